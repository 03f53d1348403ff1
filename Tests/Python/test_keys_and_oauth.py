"""Tessera's keys and OAuth endpoints seen from libraries no one here wrote, against the real binary:

  - PyJWT's PyJWKClient verifies EdDSA and ES256 access tokens from the served JWKS alone (no secret);
  - Authlib's OAuth 2 client revokes (RFC 7009) and introspects (RFC 7662) with a client registered by the CLI;
  - a rotation while tokens are in use signs no one out, and a revoked key's tokens are refused at once.

The key-revocation check across two instances on one database is in test_postgres_instances.py.
"""
import json
import secrets
import subprocess
import time
import uuid

import jwt
import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session

from conftest import BINARY, running_tessera

PASSWORD = "correct horse battery"
KEK = secrets.token_urlsafe(40)


def sign_in(base_url, email=None):
    email = email or f"keys-{uuid.uuid4().hex[:12]}@example.org"
    requests.post(f"{base_url}/api/auth/register", json={"email": email, "password": PASSWORD}, timeout=10)
    response = requests.post(f"{base_url}/api/auth/login", json={"email": email, "password": PASSWORD}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def cli(server, *args):
    result = subprocess.run([BINARY, *args, "--database", server.database_url], env=server.env, capture_output=True, text=True,
                            timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    return result.stdout


def me(server, token):
    return requests.get(f"{server.base_url}/api/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)


@pytest.fixture(scope="module", params=["EdDSA", "ES256"])
def asymmetric_server(request, jwt_secret):
    # A publication period of 3 s (JWKS max-age 1 s) instead of 10 minutes, so that a rotation completes in the test.
    with running_tessera(jwt_secret, {"JWT_ALGORITHM": request.param, "TESSERA_KEY_ENCRYPTION_KEY": KEK, "TESSERA_KEY_PUBLICATION": "3s"}) as server:
        server.algorithm = request.param
        yield server


def verify_with_jwks(server, token):
    """What another service holding only Tessera's URL does: fetch the JWKS, pick the key by kid, verify."""
    client = jwt.PyJWKClient(f"{server.base_url}/.well-known/jwks.json", cache_keys=False)
    key = client.get_signing_key_from_jwt(token)
    return jwt.decode(token, key, algorithms=[server.algorithm], audience="tessera", issuer="tessera",
                      options={"require": ["iss", "aud", "sub", "jti", "iat", "exp"]})


def jwks_kids(server):
    return [key["kid"] for key in requests.get(f"{server.base_url}/.well-known/jwks.json", timeout=10).json()["keys"]]


def test_pyjwt_verifies_tokens_from_the_jwks_alone(asymmetric_server):
    pair = sign_in(asymmetric_server.base_url)
    header = jwt.get_unverified_header(pair["accessToken"])
    assert header["alg"] == asymmetric_server.algorithm and header["typ"] == "at+jwt" and header["kid"]
    claims = verify_with_jwks(asymmetric_server, pair["accessToken"])
    assert claims["sub"] == pair["user"]["id"]

    response = requests.get(f"{asymmetric_server.base_url}/.well-known/jwks.json", timeout=10)
    assert response.headers["content-type"].startswith("application/jwk-set+json")
    assert "max-age=1" in response.headers["cache-control"]   # half the publication period
    for key in response.json()["keys"]:
        assert key["use"] == "sig" and key["alg"] == asymmetric_server.algorithm
        assert "d" not in key, "a private key was published"

    # A token whose payload was changed, or that is signed by another key under the same kid, is refused by PyJWT too.
    head, body, signature = pair["accessToken"].split(".")
    forged_claims = dict(claims, role="admin")
    forged_body = jwt.utils.base64url_encode(json.dumps(forged_claims).encode()).decode()
    with pytest.raises(jwt.InvalidSignatureError):
        verify_with_jwks(asymmetric_server, f"{head}.{forged_body}.{signature}")
    assert me(asymmetric_server, f"{head}.{forged_body}.{signature}").status_code == 401


def test_the_metadata_names_the_endpoints(asymmetric_server):
    metadata = requests.get(f"{asymmetric_server.base_url}/.well-known/oauth-authorization-server", timeout=10).json()
    assert metadata["issuer"] == "tessera"
    assert metadata["jwks_uri"] == f"{asymmetric_server.base_url}/.well-known/jwks.json"
    assert metadata["revocation_endpoint"] == f"{asymmetric_server.base_url}/oauth/revoke"
    assert metadata["introspection_endpoint"] == f"{asymmetric_server.base_url}/oauth/introspect"
    assert "client_secret_basic" in metadata["introspection_endpoint_auth_methods_supported"]


def test_a_rotation_signs_no_one_out_and_a_revoked_key_is_refused_at_once(asymmetric_server):
    before = sign_in(asymmetric_server.base_url)
    old_kid = jwt.get_unverified_header(before["accessToken"])["kid"]

    published = json.loads(cli(asymmetric_server, "keys", "rotate", "--json"))["key"]
    assert published["state"] == "published"
    # A running server reads the keys again every 10 s: the new key reaches its JWKS (before it signs, with the
    # default publication period of 10 minutes; here, with 3 s, perhaps just after).
    deadline = time.monotonic() + 15
    while published["kid"] not in (kids := jwks_kids(asymmetric_server)):
        assert time.monotonic() < deadline, kids
        time.sleep(0.25)
    assert old_kid in kids
    # Three seconds later the new key is current everywhere by the keys' times alone; the old one is retired and
    # still verifies until its tokens expire.
    deadline = time.monotonic() + 15
    while True:
        states = {key["kid"]: key["state"] for key in json.loads(cli(asymmetric_server, "keys", "list", "--json"))["keys"]}
        if states.get(published["kid"]) == "current":
            break
        assert time.monotonic() < deadline, states
        time.sleep(0.5)
    assert states[old_kid] == "retired"

    after = None
    for _ in range(50):  # the server reads the keys again within 10 s; a sign-in before that still uses the old key
        after = sign_in(asymmetric_server.base_url)
        if jwt.get_unverified_header(after["accessToken"])["kid"] == published["kid"]:
            break
        time.sleep(0.5)
    assert jwt.get_unverified_header(after["accessToken"])["kid"] == published["kid"]
    assert me(asymmetric_server, before["accessToken"]).status_code == 200, "the rotation signed someone out"
    verify_with_jwks(asymmetric_server, before["accessToken"])
    verify_with_jwks(asymmetric_server, after["accessToken"])

    # The emergency: the old key leaked. Its tokens are refused within a second; the new key's are not.
    cli(asymmetric_server, "keys", "revoke", old_kid, "--yes", "--reason", "leaked")
    deadline = time.monotonic() + 1.0
    while me(asymmetric_server, before["accessToken"]).status_code != 401:
        assert time.monotonic() < deadline, "a revoked key's token was still accepted after a second"
        time.sleep(0.02)
    assert me(asymmetric_server, after["accessToken"]).status_code == 200
    assert old_kid not in jwks_kids(asymmetric_server)


@pytest.fixture(scope="module")
def hs256_server(jwt_secret):
    with running_tessera(jwt_secret) as server:
        yield server


@pytest.fixture(scope="module")
def client_credentials(hs256_server):
    created = json.loads(cli(hs256_server, "clients", "add", "billing", "--introspect", "--revoke", "--json"))
    assert created["clientId"].startswith("tc_") and created["clientSecret"].startswith("tcs_")
    return created


def oauth_client(server, credentials):
    # Authlib authenticates with client_secret_basic by default, as RFC 7009 and 7662 clients do.
    return OAuth2Session(credentials["clientId"], credentials["clientSecret"])


def wait_for_client(server, credentials):
    """A client added by the CLI reaches a running server within its 10-second refresh."""
    client = oauth_client(server, credentials)
    deadline = time.monotonic() + 15
    while True:
        response = client.introspect_token(f"{server.base_url}/oauth/introspect", token="x")
        if response.status_code == 200:
            return client
        assert time.monotonic() < deadline, response.text
        time.sleep(0.25)


def test_authlib_introspects_access_and_refresh_tokens(hs256_server, client_credentials):
    client = wait_for_client(hs256_server, client_credentials)
    pair = sign_in(hs256_server.base_url)
    url = f"{hs256_server.base_url}/oauth/introspect"
    active = client.introspect_token(url, token=pair["accessToken"]).json()
    assert active["active"] is True
    assert active["sub"] == pair["user"]["id"] and active["username"] == pair["user"]["email"]
    assert active["token_type"] == "Bearer" and active["iss"] == "tessera" and active["aud"] == "tessera"
    assert {"exp", "iat", "jti", "sid", "role"} <= set(active)
    refresh = client.introspect_token(url, token=pair["refreshToken"], token_type_hint="refresh_token").json()
    assert refresh["active"] is True and refresh["sid"] == pair["sessionId"]
    for token in ["garbage", pair["accessToken"][:-3] + "AAA", "a.b.c", secrets.token_urlsafe(32)]:
        assert client.introspect_token(url, token=token).json() == {"active": False}

    wrong = OAuth2Session(client_credentials["clientId"], "tcs_" + secrets.token_urlsafe(32))
    response = wrong.introspect_token(url, token=pair["accessToken"])
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic")
    assert requests.post(url, data={"token": pair["accessToken"]}, timeout=10).status_code == 401


def test_authlib_revokes_an_access_token_and_a_refresh_token(hs256_server, client_credentials):
    client = wait_for_client(hs256_server, client_credentials)
    introspect = f"{hs256_server.base_url}/oauth/introspect"
    revoke = f"{hs256_server.base_url}/oauth/revoke"
    pair = sign_in(hs256_server.base_url)
    response = client.revoke_token(revoke, token=pair["accessToken"], token_type_hint="access_token")
    assert response.status_code == 200, response.text
    assert me(hs256_server, pair["accessToken"]).status_code == 401
    assert client.introspect_token(introspect, token=pair["accessToken"]).json() == {"active": False}
    # Only that token: the session goes on, and its refresh token still gives a new pair.
    refreshed = requests.post(f"{hs256_server.base_url}/api/auth/refresh", json={"refreshToken": pair["refreshToken"]}, timeout=10)
    assert refreshed.status_code == 200, refreshed.text
    fresh = refreshed.json()

    # A refresh token ends its session: the access tokens of that session too.
    assert client.revoke_token(revoke, token=fresh["refreshToken"]).status_code == 200
    assert me(hs256_server, fresh["accessToken"]).status_code == 401
    assert client.introspect_token(introspect, token=fresh["refreshToken"]).json() == {"active": False}

    # RFC 7009 §2.2: an unknown or already invalid token is 200 too; an unsupported hint is 400.
    assert client.revoke_token(revoke, token="not-a-token").status_code == 200
    assert client.revoke_token(revoke, token=fresh["refreshToken"]).status_code == 200
    response = client.revoke_token(revoke, token=pair["accessToken"], token_type_hint="device_code")
    assert response.status_code == 400 and response.json()["error"] == "unsupported_token_type"


def test_the_holder_of_a_token_may_revoke_it_without_a_client(hs256_server):
    pair = sign_in(hs256_server.base_url)
    response = requests.post(f"{hs256_server.base_url}/oauth/revoke", data={"token": pair["accessToken"]}, timeout=10)
    assert response.status_code == 200
    assert me(hs256_server, pair["accessToken"]).status_code == 401
    # Wrong client credentials are refused even where none are needed.
    response = requests.post(f"{hs256_server.base_url}/oauth/revoke", data={"token": pair["refreshToken"]}, auth=("tc_nobody", "x"), timeout=10)
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


def test_the_jwks_is_empty_with_hs256_and_a_client_without_permission_is_refused(hs256_server):
    assert requests.get(f"{hs256_server.base_url}/.well-known/jwks.json", timeout=10).json() == {"keys": []}
    feed_only = json.loads(cli(hs256_server, "clients", "add", "feed-only", "--feed", "--json"))
    listed = cli(hs256_server, "clients", "list")
    assert feed_only["clientId"] in listed and feed_only["clientSecret"] not in listed
    client = OAuth2Session(feed_only["clientId"], feed_only["clientSecret"])
    url = f"{hs256_server.base_url}/oauth/introspect"
    deadline = time.monotonic() + 15
    while (response := client.introspect_token(url, token="x")).status_code == 401:
        assert time.monotonic() < deadline
        time.sleep(0.25)
    assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"
    cli(hs256_server, "clients", "remove", feed_only["clientId"])
    assert feed_only["clientId"] not in cli(hs256_server, "clients", "list")
