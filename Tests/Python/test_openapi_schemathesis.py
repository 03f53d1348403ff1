"""openapi.yaml against the real binary: schemathesis generates requests from the document and checks that every
answer is one the document allows (status, media type, body schema, required headers, never a 5xx).

Three runs, each one pytest test per operation:
  - without a token: every operation (the bearer routes must answer their documented 401);
  - with an admin's valid bearer token: every bearer operation;
  - with a normal user's valid bearer token: the admin operations (their documented 403).
Then spot checks of the points the contract spells out (the 72-byte limit, `reason` types, `{"userId","all"}`
together, an empty `event=`, identifiers), each also validated against the document.

Tokens: every authenticated case signs in afresh and sends its own token. Several operations end the caller's
tokens (logout, logout-all and its aliases, logout-others, password change, revoke-all, which ends everyone's), so a
token shared across cases would turn the rest of the run into 401s; a fresh session per case (a few milliseconds at
BCRYPT_COST=4) keeps every case independent of the order operations run in, and keeps those operations in the run.
The password change uses an account of its own per case (registered through the API) with the real current password
filled in, so that the run reaches the new-password rule instead of stopping at 401; an account of its own, because a
case that succeeds changes the password.

Sign-in limits: the fuzzer's failed sign-ins from 127.0.0.1 are meant to reach the documented 429, which would lock
the harness's own sign-ins out for five minutes. This module's server trusts 127.0.0.1 as a reverse proxy
(TESSERA_TRUSTED_PROXIES), and only the harness's sign-ins send an X-Forwarded-For, each from an address of its own
in 2001:db8::/32 (documentation space; nothing is sent there). Generated requests carry no such header, so the
server sees them as 127.0.0.1, as without a proxy. Every request goes to the server on 127.0.0.1.

The module starts its own server (the conftest's start-up code, with that one variable) rather than sharing the
session's `tessera_server`: the run signs everyone out and locks 127.0.0.1 out of sign-in, which must not leak into
other suites.

Known server-side mismatches are xfail: in the generated runs through KNOWN_SERVER_MISMATCHES (none today), in the
spot checks as strict xfail marks (when the server is fixed, the test turns XPASS and fails: remove the mark).
"""
import itertools
import os
import secrets
import sqlite3
import subprocess
import threading
import time

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings

from conftest import BINARY, running_tessera
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

OPENAPI = os.path.join(os.path.dirname(__file__), "..", "..", "openapi.yaml")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
PASSWORD = "correct horse battery"
TIMEOUT = 30

# Bounded: at most 25 generated examples per operation and run (the coverage phase adds its deterministic boundary
# cases on top); no deadline (two cores, bcrypt, fsync); no example database (Hypothesis still keeps its caches in
# .hypothesis/, which ignores itself in git).
BOUNDED = settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)

schema = schemathesis.openapi.from_path(OPENAPI)
# Operations that need no bearer token: the same answers with or without one, so only the run without a token has
# them. The client-authenticated ones (introspection, the revocation feed) answer a bearer token as no credentials:
# their documented 401 `invalid_client`, which the run without a token already checks.
OPEN_OPERATIONS = [
    "register", "login", "refresh", "health", "ready", "jwks", "authorizationServerMetadata", "revokeToken", "introspectToken",
    "revocationSnapshot", "revocationChanges",
]
bearer_operations = schema.exclude(operation_id=OPEN_OPERATIONS)
admin_operations = schema.include(tag="admin")


class Accounts:
    """Signs in through the API, each sign-in from an X-Forwarded-For address of its own (see the module doc)."""

    def __init__(self, server):
        self.server = server
        self.base_url = server.base_url
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self.admin_email = f"admin-{secrets.token_hex(4)}@example.org"
        # The CLI beside the running server, on its database, as an operator would: the only way to make an admin.
        result = subprocess.run(
            [BINARY, "users", "add", self.admin_email, "--admin", "--password-stdin", "--database", server.database_url],
            input=PASSWORD + "\n", env=server.env, capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0, f"tessera users add failed ({result.returncode}): {result.stderr}"

    def _number(self):
        with self._lock:
            return next(self._numbers)

    def forwarded_for(self):
        return {"X-Forwarded-For": f"2001:db8::{self._number():x}"}

    def register(self, email=None, password=PASSWORD):
        email = email or f"user-{secrets.token_hex(6)}@example.org"
        response = requests.post(
            f"{self.base_url}/api/auth/register", json={"email": email, "password": password}, timeout=TIMEOUT
        )
        assert response.status_code == 201, response.text
        return email

    def sign_in(self, email, password=PASSWORD):
        response = requests.post(
            f"{self.base_url}/api/auth/login", json={"email": email, "password": password},
            headers=self.forwarded_for(), timeout=TIMEOUT,
        )
        assert response.status_code == 200, f"sign-in of {email} for a test case: {response.status_code} {response.text}"
        return response.json()

    def admin_token(self):
        return self.sign_in(self.admin_email)["accessToken"]

    def fresh_user(self):
        """A new normal account and a token of it: (email, token)."""
        email = self.register()
        return email, self.sign_in(email)["accessToken"]

    def bearer(self, token):
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def contract_server(jwt_secret):
    with running_tessera(jwt_secret, extra_env={"TESSERA_TRUSTED_PROXIES": "127.0.0.1/32"}) as server:
        yield server


@pytest.fixture(scope="module")
def accounts(contract_server):
    return Accounts(contract_server)


# Server answers the document rules out, where the server (not the document) should change: (reason naming the
# request and the answer, predicate on (case, response)). The generated runs found none; the mismatches found are
# in the spot checks below (marked xfail there). pytest.xfail ends that operation's run at the first such case.
KNOWN_SERVER_MISMATCHES = []


def call_and_validate(case, base_url, headers=None):
    """Sends the case to the server on 127.0.0.1 and runs the five checks; a known server mismatch becomes xfail."""
    response = case.call(base_url=base_url, headers=headers, timeout=TIMEOUT)
    try:
        case.validate_response(response, checks=CHECKS)
    except BaseException:
        for reason, matches in KNOWN_SERVER_MISMATCHES:
            if matches(case, response):
                pytest.xfail(reason)
        raise
    return response


@schema.parametrize()
@BOUNDED
def test_without_a_token(case, contract_server):
    call_and_validate(case, contract_server.base_url)


@bearer_operations.parametrize()
@BOUNDED
def test_with_an_admin_token(case, contract_server, accounts):
    if case.operation.definition.raw.get("operationId") == "changePassword":
        # An account of its own (a success changes its password), its real current password when the case has a
        # string there, and an address of its own (the check counts as a sign-in), so that the new-password rule is
        # what the run explores.
        _, token = accounts.fresh_user()
        if isinstance(case.body, dict) and isinstance(case.body.get("currentPassword"), str):
            case.body["currentPassword"] = PASSWORD
        headers = {**accounts.bearer(token), **accounts.forwarded_for()}
    elif case.operation.definition.raw.get("operationId") == "deleteMe":
        # An account of its own (a success deletes it) and an address of its own (a wrong password counts as a
        # failed sign-in), never the admin's.
        _, token = accounts.fresh_user()
        headers = {**accounts.bearer(token), **accounts.forwarded_for()}
    else:
        headers = accounts.bearer(accounts.admin_token())
    call_and_validate(case, contract_server.base_url, headers=headers)


@admin_operations.parametrize()
@settings(BOUNDED, max_examples=5)
def test_admin_operations_with_a_normal_users_token(case, contract_server, accounts):
    _, token = accounts.fresh_user()
    headers = accounts.bearer(token)
    response = call_and_validate(case, contract_server.base_url, headers=headers)
    # Unless the case is one of the coverage phase's other-method probes, or a negative case that left the
    # Authorization header out, the valid token of a normal user meets 403.
    if case.method.upper() == case.operation.method.upper() and response.request.headers.get("Authorization") == headers["Authorization"]:
        assert response.status_code in (403, 503), f"{response.status_code}: {response.text}"


# Spot checks: the points the contract spells out, each answer also validated against the document.

def operation(method, path):
    return schema[path][method]


def check(method, path, response, status, code=None):
    """Asserts the status (and problem code) and that the document allows the answer."""
    assert response.status_code == status, f"{method} {path}: {response.status_code} {response.text}"
    if code is not None:
        assert response.headers["Content-Type"].startswith("application/problem+json")
        assert response.json()["code"] == code, response.text
    operation(method, path).validate_response(response)


def test_the_72_byte_password_limit(contract_server, accounts):
    base = contract_server.base_url
    cases = [
        ("a" * 72, 201, None),
        ("a" * 73, 422, "weak_password"),
        ("é" * 36, 201, None),  # 36 characters, 72 bytes
        ("é" * 37, 422, "weak_password"),  # 37 characters (within maxLength 72), 74 bytes
        ("abcdefg\x00", 422, "weak_password"),
        ("e\u0301" * 7, 422, "weak_password"),  # 14 code points, 7 characters
    ]
    for password, status, code in cases:
        response = requests.post(
            f"{base}/api/auth/register", json={"email": f"p-{secrets.token_hex(6)}@example.org", "password": password},
            timeout=TIMEOUT,
        )
        check("POST", "/api/auth/register", response, status, code)

    # The same rule for a change and an operator's reset (a change checks the current password as a sign-in does,
    # hence an address of its own).
    email, token = accounts.fresh_user()
    response = requests.post(
        f"{base}/api/me/password", json={"currentPassword": PASSWORD, "newPassword": "é" * 37},
        headers={**accounts.bearer(token), **accounts.forwarded_for()}, timeout=TIMEOUT,
    )
    check("POST", "/api/me/password", response, 422, "weak_password")
    # A wrong current password: 401 invalid_credentials without the bearer challenge.
    response = requests.post(
        f"{base}/api/me/password", json={"currentPassword": "not it at all", "newPassword": "a" * 72},
        headers={**accounts.bearer(token), **accounts.forwarded_for()}, timeout=TIMEOUT,
    )
    check("POST", "/api/me/password", response, 401, "invalid_credentials")
    assert "WWW-Authenticate" not in response.headers
    user_id = requests.get(f"{base}/api/me", headers=accounts.bearer(token), timeout=TIMEOUT).json()["id"]
    admin = accounts.bearer(accounts.admin_token())
    response = requests.post(f"{base}/api/admin/users/{user_id}/password", json={"newPassword": "a" * 73}, headers=admin, timeout=TIMEOUT)
    check("POST", "/api/admin/users/{id}/password", response, 422, "weak_password")
    response = requests.post(f"{base}/api/admin/users/{user_id}/password", json={"newPassword": "a" * 72}, headers=admin, timeout=TIMEOUT)
    check("POST", "/api/admin/users/{id}/password", response, 200)
    # Sign-in refuses a password that could not have been set as a wrong one.
    response = requests.post(
        f"{base}/api/auth/login", json={"email": email, "password": "a" * 72 + "b"}, headers=accounts.forwarded_for(), timeout=TIMEOUT
    )
    check("POST", "/api/auth/login", response, 401, "invalid_credentials")


def test_reason_is_a_string_or_null(contract_server, accounts):
    base = contract_server.base_url
    admin = accounts.bearer(accounts.admin_token())
    email, _ = accounts.fresh_user()
    user_id = requests.get(f"{base}/api/admin/users", params={"q": email}, headers=admin, timeout=TIMEOUT).json()["users"][0]["id"]
    for reason, status in [(5, 400), (["x"], 400), ({"x": 1}, 400), (True, 400), (None, 200), ("stolen phone", 200)]:
        response = requests.post(f"{base}/api/admin/revoke", json={"userIds": [user_id], "reason": reason}, headers=admin, timeout=TIMEOUT)
        check("POST", "/api/admin/revoke", response, status, "invalid_body" if status == 400 else None)
        response = requests.post(f"{base}/api/admin/unrevoke", json={"userId": user_id, "reason": reason}, headers=admin, timeout=TIMEOUT)
        check("POST", "/api/admin/unrevoke", response, status, "invalid_body" if status == 400 else None)
        response = requests.post(f"{base}/api/admin/users/{user_id}/deactivate", json={"reason": reason}, headers=admin, timeout=TIMEOUT)
        check("POST", "/api/admin/users/{id}/deactivate", response, status, "invalid_body" if status == 400 else None)
        requests.post(f"{base}/api/admin/users/{user_id}/activate", headers=admin, timeout=TIMEOUT)
    # An empty body is no reason; a body that is not an object is invalid_body.
    response = requests.post(f"{base}/api/admin/users/{user_id}/deactivate", headers=admin, timeout=TIMEOUT)
    check("POST", "/api/admin/users/{id}/deactivate", response, 200)
    response = requests.post(f"{base}/api/admin/users/{user_id}/deactivate", json=[], headers=admin, timeout=TIMEOUT)
    check("POST", "/api/admin/users/{id}/deactivate", response, 400, "invalid_body")
    response = requests.post(f"{base}/api/admin/revoke-all", json={"reason": 5}, headers=admin, timeout=TIMEOUT)
    check("POST", "/api/admin/revoke-all", response, 400, "invalid_body")


def test_unrevoke_takes_exactly_one_target(contract_server, accounts):
    base = contract_server.base_url
    admin = accounts.bearer(accounts.admin_token())
    email, _ = accounts.fresh_user()
    user_id = requests.get(f"{base}/api/admin/users", params={"q": email}, headers=admin, timeout=TIMEOUT).json()["users"][0]["id"]
    for body in [{"userId": user_id, "all": True}, {}, {"all": False}, {"all": None}, {"userId": None}, {"reason": "x"}]:
        response = requests.post(f"{base}/api/admin/unrevoke", json=body, headers=admin, timeout=TIMEOUT)
        check("POST", "/api/admin/unrevoke", response, 400, "invalid_request")
    response = requests.post(f"{base}/api/admin/unrevoke", json={"userId": "not-a-uuid"}, headers=admin, timeout=TIMEOUT)
    check("POST", "/api/admin/unrevoke", response, 400, "invalid_request")
    response = requests.post(f"{base}/api/admin/unrevoke", json={"userId": user_id, "all": "yes"}, headers=admin, timeout=TIMEOUT)
    check("POST", "/api/admin/unrevoke", response, 400, "invalid_body")

    # One user: nothing to undo, then an operator's revoke undone, then a final cut refused.
    response = requests.post(f"{base}/api/admin/unrevoke", json={"userId": user_id, "all": False}, headers=admin, timeout=TIMEOUT)
    check("POST", "/api/admin/unrevoke", response, 409, "nothing_to_undo")
    requests.post(f"{base}/api/admin/revoke", json={"userIds": [user_id]}, headers=admin, timeout=TIMEOUT).raise_for_status()
    response = requests.post(f"{base}/api/admin/unrevoke", json={"userId": user_id, "all": None}, headers=admin, timeout=TIMEOUT)
    check("POST", "/api/admin/unrevoke", response, 200)
    assert response.json()["kind"] == "subject" and response.json()["userId"] == user_id
    token = accounts.sign_in(email)["accessToken"]
    requests.post(f"{base}/api/auth/logout-all", headers=accounts.bearer(token), timeout=TIMEOUT).raise_for_status()
    response = requests.post(f"{base}/api/admin/unrevoke", json={"userId": user_id, "reason": "mistake"}, headers=admin, timeout=TIMEOUT)
    check("POST", "/api/admin/unrevoke", response, 409, "cut_is_final")
    requests.post(f"{base}/api/admin/users/{user_id}/deactivate", headers=admin, timeout=TIMEOUT).raise_for_status()
    response = requests.post(f"{base}/api/admin/unrevoke", json={"userId": user_id}, headers=admin, timeout=TIMEOUT)
    check("POST", "/api/admin/unrevoke", response, 409, "account_inactive")
    # Everyone, with userId null.
    response = requests.post(f"{base}/api/admin/unrevoke", json={"all": True, "userId": None}, headers=admin, timeout=TIMEOUT)
    assert response.status_code in (200, 409), response.text
    operation("POST", "/api/admin/unrevoke").validate_response(response)

    # Each refusal wrote an UNREVOKE_REFUSED row naming its code.
    response = requests.get(
        f"{base}/api/admin/audit", params={"event": "UNREVOKE_REFUSED", "userId": user_id}, headers=admin, timeout=TIMEOUT
    )
    check("GET", "/api/admin/audit", response, 200)
    codes = sorted(event["details"].get("code") for event in response.json()["events"])
    assert codes == ["account_inactive", "cut_is_final", "nothing_to_undo"], codes


def test_empty_query_values(contract_server, accounts):
    base = contract_server.base_url
    admin = accounts.bearer(accounts.admin_token())
    for name in ["event", "userId", "since", "until", "limit", "cursor"]:
        response = requests.get(f"{base}/api/admin/audit?{name}=", headers=admin, timeout=TIMEOUT)
        check("GET", "/api/admin/audit", response, 400, "invalid_request")
    response = requests.get(f"{base}/api/admin/audit", params={"event": "unrevoke"}, headers=admin, timeout=TIMEOUT)
    check("GET", "/api/admin/audit", response, 400, "invalid_request")
    response = requests.get(f"{base}/api/admin/audit", params={"event": "UNREVOKE_REFUSED"}, headers=admin, timeout=TIMEOUT)
    check("GET", "/api/admin/audit", response, 200)
    # In the account search an empty q lists everyone, and so does an empty cursor.
    for query in ["q=", "cursor="]:
        response = requests.get(f"{base}/api/admin/users?{query}", headers=admin, timeout=TIMEOUT)
        check("GET", "/api/admin/users", response, 200)


@pytest.mark.parametrize("q", ["a\u200bb", "a\u00adb", "a\u202eb", "a\x00b", "a\x1fb", "\u2060", "a\nb", "a(b", "😀"])
def test_search_refuses_what_no_address_holds(contract_server, accounts, q):
    response = requests.get(
        f"{contract_server.base_url}/api/admin/users", params={"q": q}, headers=accounts.bearer(accounts.admin_token()), timeout=TIMEOUT
    )
    check("GET", "/api/admin/users", response, 400, "invalid_request")


@pytest.mark.parametrize("email", [
    "аррӏе@example.org",  # Cyrillic letters that all look Latin
    "pаypal@example.org",  # a Cyrillic а in a Latin word
    "a\u200bb@example.org",  # zero-width space (format)
    "a\u202eb@example.org",  # right-to-left override (format)
    "a\x07b@example.org",  # control
    "ﬁ@example.org",  # compatibility character (ligature)
    "a@localhost",
    "a b@example.org",
])
def test_register_refuses_what_the_identifier_rule_refuses(contract_server, email):
    response = requests.post(
        f"{contract_server.base_url}/api/auth/register", json={"email": email, "password": PASSWORD}, timeout=TIMEOUT
    )
    check("POST", "/api/auth/register", response, 422, "invalid_email")


# U+200B ZERO WIDTH SPACE is a format character: refused at either end too (Foundation on Linux counts it as white
# space, so trimming by CharacterSet.whitespaces once let it through; EmailAddress trims by Unicode White_Space).
@pytest.mark.parametrize("where", ["end", "start"])
def test_register_refuses_a_zero_width_space_at_either_end(contract_server, where):
    local = f"zwsp-{secrets.token_hex(4)}@example.org"
    email = local + "\u200b" if where == "end" else "\u200b" + local
    response = requests.post(
        f"{contract_server.base_url}/api/auth/register", json={"email": email, "password": PASSWORD}, timeout=TIMEOUT
    )
    check("POST", "/api/auth/register", response, 422, "invalid_email")


def test_search_refuses_a_zero_width_space_at_either_end(contract_server, accounts):
    response = requests.get(
        f"{contract_server.base_url}/api/admin/users", params={"q": "\u200b"},
        headers=accounts.bearer(accounts.admin_token()), timeout=TIMEOUT,
    )
    check("GET", "/api/admin/users", response, 400, "invalid_request")


def test_bodies_over_64_kib(contract_server):
    response = requests.post(
        f"{contract_server.base_url}/api/auth/register", json={"email": "big@example.org", "password": "a" * 70_000},
        timeout=TIMEOUT,
    )
    check("POST", "/api/auth/register", response, 413, "payload_too_large")


def test_database_unavailable_is_503_with_retry_after(contract_server, accounts):
    """While another process holds SQLite's write lock, a write cannot commit within 2 s: 503 database_unavailable
    with Retry-After, on an open route, a bearer route, an admin route and a password route."""
    base = contract_server.base_url
    admin_pair = accounts.sign_in(accounts.admin_email)
    admin = accounts.bearer(admin_pair["accessToken"])
    _, token = accounts.fresh_user()
    requests_to_try = [
        ("POST", "/api/auth/register", lambda: requests.post(
            f"{base}/api/auth/register", json={"email": f"locked-{secrets.token_hex(4)}@example.org", "password": PASSWORD}, timeout=TIMEOUT)),
        ("POST", "/api/auth/refresh", lambda: requests.post(
            f"{base}/api/auth/refresh", json={"refreshToken": admin_pair["refreshToken"]}, timeout=TIMEOUT)),
        ("POST", "/api/auth/logout", lambda: requests.post(f"{base}/api/auth/logout", headers=accounts.bearer(token), timeout=TIMEOUT)),
        ("POST", "/api/admin/unrevoke", lambda: requests.post(f"{base}/api/admin/unrevoke", json={"all": True}, headers=admin, timeout=TIMEOUT)),
        ("POST", "/api/me/password", lambda: requests.post(
            f"{base}/api/me/password", json={"currentPassword": PASSWORD, "newPassword": PASSWORD},
            headers={**admin, **accounts.forwarded_for()}, timeout=TIMEOUT)),
    ]
    path = contract_server.database_url.removeprefix("sqlite://")
    lock = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        lock.execute("BEGIN EXCLUSIVE")
        for method, route, send in requests_to_try:
            started = time.monotonic()
            response = send()
            check(method, route, response, 503, "database_unavailable")
            assert int(response.headers["Retry-After"]) >= 1
            assert time.monotonic() - started < 10
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    # Nothing was written: the token the refused logout presented still works.
    assert requests.get(f"{base}/api/v1/ping-auth", headers=accounts.bearer(token), timeout=TIMEOUT).status_code == 200
