"""Tessera's access tokens seen from another JWT library (PyJWT), against the real binary (fixture: conftest.py).

A token Tessera issues verifies with PyJWT and JWT_SECRET and carries the documented claims and header; a token
PyJWT makes is accepted only when signed with HS256 and that secret.
"""
import base64
import hashlib
import secrets
import time
import uuid

import jwt
import pytest
import requests

PASSWORD = "correct horse battery"
CLAIMS = ("iss", "aud", "sub", "sid", "jti", "iat", "exp", "ver", "epoch", "role")


def sign_in(base_url):
    """Registers a fresh account and signs in; returns the login response's JSON."""
    email = f"interop-{uuid.uuid4().hex[:12]}@example.org"
    response = requests.post(f"{base_url}/api/auth/register", json={"email": email, "password": PASSWORD}, timeout=10)
    assert response.status_code == 201, response.text
    response = requests.post(f"{base_url}/api/auth/login", json={"email": email, "password": PASSWORD}, timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accessToken"] and body["refreshToken"]
    return body


def ping(base_url, token):
    return requests.get(f"{base_url}/api/v1/ping-auth", headers={"Authorization": f"Bearer {token}"}, timeout=10)


@pytest.fixture
def signed_in(tessera_server):
    return sign_in(tessera_server)


def secret_kid(secret):
    """The kid Tessera names an HS256 secret by: hs_ and the first 12 bytes of SHA-256 over a label and the secret,
    base64url without padding (recomputed here from the documented rule, not read from the server)."""
    digest = hashlib.sha256(b"tessera kid\x00" + secret.encode()).digest()[:12]
    return "hs_" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def decode(token, secret):
    return jwt.decode(
        token, secret, algorithms=["HS256"], audience="tessera", issuer="tessera",
        options={"require": ["iss", "aud", "sub", "jti", "iat", "exp"]},
    )


def test_an_access_token_verifies_with_pyjwt_and_carries_the_claims(tessera_server, jwt_secret, signed_in):
    token = signed_in["accessToken"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256"
    assert header["typ"] == "at+jwt"
    assert header["kid"] == secret_kid(jwt_secret)

    claims = decode(token, jwt_secret)
    missing = [name for name in CLAIMS if name not in claims]
    assert not missing, f"claims missing: {missing} in {claims}"
    assert claims["iss"] == "tessera" and claims["aud"] == "tessera"
    assert claims["sub"].lower() == signed_in["user"]["id"].lower()
    assert claims["sid"].lower() == signed_in["sessionId"].lower()
    uuid.UUID(claims["jti"])
    assert claims["role"] == signed_in["user"]["role"]
    assert isinstance(claims["ver"], int) and isinstance(claims["epoch"], int)
    now = time.time()
    assert claims["iat"] <= now + 5
    assert claims["exp"] > now and claims["exp"] - claims["iat"] == signed_in["expiresIn"]

    assert ping(tessera_server, token).status_code == 200


def test_the_token_does_not_verify_with_another_key(jwt_secret, signed_in):
    with pytest.raises(jwt.InvalidSignatureError):
        decode(signed_in["accessToken"], secrets.token_urlsafe(40))


def test_a_token_pyjwt_signs_with_the_secret_is_accepted(tessera_server, jwt_secret, signed_in):
    # The control for the two refusals below: same claims, PyJWT's own encoding, the right key.
    claims = decode(signed_in["accessToken"], jwt_secret)
    token = jwt.encode(claims, jwt_secret, algorithm="HS256", headers={"typ": "at+jwt", "kid": secret_kid(jwt_secret)})
    response = ping(tessera_server, token)
    assert response.status_code == 200, response.text
    # The same without a kid: every token must name its key.
    token = jwt.encode(claims, jwt_secret, algorithm="HS256", headers={"typ": "at+jwt"})
    assert ping(tessera_server, token).status_code == 401


def test_alg_none_is_refused(tessera_server, jwt_secret, signed_in):
    claims = decode(signed_in["accessToken"], jwt_secret)
    token = jwt.encode(claims, None, algorithm="none", headers={"typ": "at+jwt", "kid": secret_kid(jwt_secret)})
    assert jwt.get_unverified_header(token)["alg"] == "none"
    response = ping(tessera_server, token)
    assert response.status_code == 401, response.text


def test_another_key_is_refused(tessera_server, jwt_secret, signed_in):
    claims = decode(signed_in["accessToken"], jwt_secret)
    other = secrets.token_urlsafe(40)
    assert other != jwt_secret
    token = jwt.encode(claims, other, algorithm="HS256", headers={"typ": "at+jwt", "kid": secret_kid(jwt_secret)})
    response = ping(tessera_server, token)
    assert response.status_code == 401, response.text
