"""Methods the HTTP parser itself does not know, sent over a raw socket to the real binary (HummingbirdTesting's
router client never reaches the parser): 501 problem+json with Allow, not a bare 400."""
import json
import socket
from urllib.parse import urlparse


def raw(base_url, request: bytes) -> bytes:
    url = urlparse(base_url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as connection:
        connection.sendall(request)
        chunks = []
        while True:
            chunk = connection.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def test_an_unknown_method_is_501_problem_json_with_allow(tessera_server):
    answer = raw(tessera_server, b"FOO /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 501 Not Implemented"
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    assert headers["content-type"] == "application/problem+json"
    assert "GET" in headers["allow"]
    assert json.loads(body)["code"] == "method_not_implemented"


def test_trace_is_405_with_allow(tessera_server):
    answer = raw(tessera_server, b"TRACE /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 405 Method Not Allowed"
    assert b"Allow: GET, HEAD, OPTIONS" in head
    assert json.loads(body)["code"] == "method_not_allowed"
