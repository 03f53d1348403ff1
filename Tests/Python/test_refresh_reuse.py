"""Refresh retries against real `tessera serve` processes: a refresh token presented again by the same client within
TESSERA_REFRESH_REUSE_INTERVAL is answered with the same pair (two tabs at once, a phone that lost the answer), while a
replay after its successor was used still ends the session and is audited. Only hashes of refresh tokens reach the
database.

On SQLite always; on two instances of one PostgreSQL database too when TESSERA_TEST_POSTGRES_URL is set.
"""
import json
import os
import re
import secrets
import sqlite3
import subprocess
import tempfile
import threading
import urllib.parse

import pytest
import requests

from conftest import BINARY, describe, new_email, problem_code, running_tessera, running_tessera_on

PASSWORD = "correct horse battery staple"
USER_AGENT = "TesseraPhone/1.0 (flaky network)"
HTTP_TIMEOUT = 10
POSTGRES_URL = os.environ.get("TESSERA_TEST_POSTGRES_URL")


def sign_up_and_in(base_url):
    email = new_email("refresh")
    registered = requests.post(f"{base_url}/api/auth/register", json={"email": email, "password": PASSWORD}, timeout=HTTP_TIMEOUT)
    assert registered.status_code == 201, describe(registered)
    signed_in = requests.post(f"{base_url}/api/auth/login", json={"email": email, "password": PASSWORD},
                              headers={"User-Agent": USER_AGENT}, timeout=HTTP_TIMEOUT)
    assert signed_in.status_code == 200, describe(signed_in)
    return signed_in.json()


def refresh(base_url, token, user_agent=USER_AGENT, nonce=None):
    body = {"refreshToken": token}
    if nonce is not None:
        body["clientNonce"] = nonce
    return requests.post(f"{base_url}/api/auth/refresh", json=body, headers={"User-Agent": user_agent}, timeout=HTTP_TIMEOUT)


def ping(base_url, access_token):
    return requests.get(f"{base_url}/api/v1/ping-auth", headers={"Authorization": f"Bearer {access_token}"}, timeout=HTTP_TIMEOUT)


def refresh_at_once(base_urls, token, count=20, nonce=None):
    """`count` threads, released together by a barrier, each presenting the same refresh token (spread over the
    given servers); returns their answers."""
    barrier = threading.Barrier(count)
    answers = [None] * count

    def present(index):
        with requests.Session() as http:
            body = {"refreshToken": token}
            if nonce is not None:
                body["clientNonce"] = nonce
            base_url = base_urls[index % len(base_urls)]
            barrier.wait()
            answers[index] = http.post(f"{base_url}/api/auth/refresh", json=body, headers={"User-Agent": USER_AGENT},
                                       timeout=HTTP_TIMEOUT)

    threads = [threading.Thread(target=present, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def assert_one_pair_and_a_live_session(base_urls, pair, answers):
    assert [a.status_code for a in answers] == [200] * len(answers), [describe(a) for a in answers if a.status_code != 200]
    successors = {a.json()["refreshToken"] for a in answers}
    assert len(successors) == 1, f"{len(successors)} different successors for one refresh token"
    assert {a.json()["sessionId"] for a in answers} == {pair["sessionId"]}
    for answer in answers[:4]:
        for base_url in base_urls:
            assert ping(base_url, answer.json()["accessToken"]).status_code == 200, "the session was taken for a stolen token"
    successor = successors.pop()
    assert successor != pair["refreshToken"]
    following = refresh(base_urls[-1], successor)
    assert following.status_code == 200, f"the successor must work: {describe(following)}"
    for base_url in base_urls:
        assert ping(base_url, following.json()["accessToken"]).status_code == 200
    return successor, following.json()


def audit_events(server, event):
    done = subprocess.run([BINARY, "audit", "--event", event, "--json", "--database", server.database_url],
                          env=server.env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"tessera audit: {done.stdout}{done.stderr}"
    events = json.loads(done.stdout)
    return events["events"] if isinstance(events, dict) else events


def test_twenty_refreshes_of_one_token_at_once_all_get_one_pair_and_the_session_lives(jwt_secret):
    """The measured failure this fixes: twenty concurrent refreshes of one token gave one 200, nineteen 401s and a
    revoked session."""
    with running_tessera(jwt_secret) as server:
        pair = sign_up_and_in(server.base_url)
        answers = refresh_at_once([server.base_url], pair["refreshToken"])
        assert_one_pair_and_a_live_session([server.base_url], pair, answers)
        assert audit_events(server, "TOKEN_REUSE_DETECTED") == []


def test_a_replay_after_the_successor_was_used_revokes_the_session_and_only_hashes_are_stored(jwt_secret):
    """Stops a thief with a copied refresh token: once its owner has used the successor, the old token presented again
    (within the interval, with the owner's user agent and nonce) ends the session, and is audited."""
    with running_tessera(jwt_secret) as server:
        pair = sign_up_and_in(server.base_url)
        stolen = pair["refreshToken"]
        retried = refresh_at_once([server.base_url], stolen, count=5, nonce="owner-nonce")
        successor, latest = assert_one_pair_and_a_live_session([server.base_url], pair, retried)

        replay = refresh(server.base_url, stolen, nonce="owner-nonce")
        assert replay.status_code == 401 and problem_code(replay) == "invalid_refresh_token", describe(replay)
        assert ping(server.base_url, latest["accessToken"]).status_code == 401, "the session of a replayed token must end"
        assert refresh(server.base_url, latest["refreshToken"]).status_code == 401
        events = audit_events(server, "TOKEN_REUSE_DETECTED")
        assert len(events) == 1 and events[0]["sessionId"] == pair["sessionId"], events
        assert events[0]["details"]["reason"] == "successor_used", events

        # Nothing the database keeps is a refresh token, the user agent's hash or the nonce in clear.
        with sqlite3.connect(server.database_url.removeprefix("sqlite://")) as db:
            dump = "\n".join(db.iterdump())
            kept = db.execute("SELECT user_agent_hash, client_nonce_hash FROM spent_refresh_tokens").fetchall()
        for token in (stolen, successor, latest["refreshToken"], "owner-nonce"):
            assert token not in dump, "a refresh token or nonce is stored in clear"
        assert kept and all(value is None or re.fullmatch("[0-9a-f]{64}", value) for row in kept for value in row), kept
        assert any(nonce for _, nonce in kept), "the nonce's hash is kept with the token it was sent with"


def test_a_replay_from_another_client_within_the_interval_revokes_the_session(jwt_secret):
    with running_tessera(jwt_secret) as server:
        pair = sign_up_and_in(server.base_url)
        owner = refresh(server.base_url, pair["refreshToken"])
        assert owner.status_code == 200, describe(owner)
        replay = refresh(server.base_url, pair["refreshToken"], user_agent="curl/8.0")
        assert replay.status_code == 401, describe(replay)
        assert ping(server.base_url, owner.json()["accessToken"]).status_code == 401
        assert [e["details"]["reason"] for e in audit_events(server, "TOKEN_REUSE_DETECTED")] == ["other_client"]


@pytest.mark.skipif(not POSTGRES_URL, reason="TESSERA_TEST_POSTGRES_URL is unset: scripts/test starts a PostgreSQL cluster and sets it")
def test_twenty_refreshes_at_once_through_two_postgres_instances_get_one_pair(jwt_secret):
    """Every instance derives the same successor (its key is in the database), and the session's row makes the
    presentations take turns: twenty at once through two instances all get one pair."""
    import psycopg

    name = "tessera_rr_" + secrets.token_hex(6)
    parts = urllib.parse.urlsplit(POSTGRES_URL)
    url = urllib.parse.urlunsplit(parts._replace(path="/" + name))
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        with tempfile.TemporaryDirectory(prefix="tessera-rr-") as logs:
            with running_tessera_on(jwt_secret, url, logs) as one, running_tessera_on(jwt_secret, url, logs) as two:
                pair = sign_up_and_in(one.base_url)
                answers = refresh_at_once([one.base_url, two.base_url], pair["refreshToken"])
                assert_one_pair_and_a_live_session([one.base_url, two.base_url], pair, answers)
                # The theft is still caught across instances: the first token again, after its successor was used.
                replay = refresh(two.base_url, pair["refreshToken"])
                assert replay.status_code == 401, describe(replay)
                assert audit_events(one, "TOKEN_REUSE_DETECTED")[0]["details"]["reason"] == "successor_used"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
