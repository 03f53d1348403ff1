"""Personal API tokens against the real binary: shown once, stored as a hash, accepted on every bearer route and on
every instance, and refused — within a second, everywhere — once revoked, expired, or cut by a cut of their user or
of everyone, while signing out of the one device that made a token leaves it alone.

The SQLite tests run always; the PostgreSQL ones (two instances on one database) need the cluster that
test_postgres_instances.py needs (TESSERA_TEST_POSTGRES_URL, TESSERA_TEST_PG_CTL; they are skipped without it):
    TESSERA_BINARY=.build/debug/tessera .build-venv/bin/python -m pytest -q -p no:cacheprovider Tests/Python/test_api_tokens.py
Every server here logs at LOG_LEVEL=trace, and no test ends before its servers' logs were searched for every token
secret the test was given.
"""
import base64
import datetime
import hashlib
import json
import os
import re
import secrets
import sqlite3
import subprocess
import threading
import time

import pytest
import requests

from conftest import BINARY, TesseraLaunch, describe, new_email, problem_code, run_cli, running_tessera, tessera_environment

PASSWORD = "correct horse battery staple"
ADMIN_PASSWORD = "admin horse battery staple"
HTTP_TIMEOUT = 5
TOKEN_SHAPE = re.compile(r"^tsr_[A-Za-z0-9_-]{43}[A-Za-z0-9_-]{8}$")
PROPAGATION_BOUND = 1.0   # a revocation anywhere is enforced by every instance within this (README)
LAST_USE_BOUND = 6.0      # last-use times are written every 5 s
DAY = datetime.timedelta(days=1)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def checksum(random_part):
    """The token's checksum as APIToken.swift makes it: base64url of the first 6 bytes of SHA-256("tessera-api-token:" + random)."""
    return b64url(hashlib.sha256(b"tessera-api-token:" + random_part.encode()).digest()[:6])


def random_token(valid_checksum=False):
    """A token of the right shape that no one was given: a random checksum, or a correct one (which gets past the
    checksum to a database read)."""
    random_part = b64url(secrets.token_bytes(32))
    return "tsr_" + random_part + (checksum(random_part) if valid_checksum else b64url(secrets.token_bytes(6)))


def parse_time(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def wait_until(predicate, timeout, interval=0.05, message="condition"):
    start = time.monotonic()
    while True:
        value = predicate()
        if value:
            return value, time.monotonic() - start
        if time.monotonic() - start > timeout:
            pytest.fail(f"{message}: not within {timeout} s (last: {value!r})")
        time.sleep(interval)


class API:
    """The calls the tests make on one instance. Every token secret it is handed is remembered in `secrets_seen`
    (shared by the instances of one test), so that the logs can be searched for them."""

    def __init__(self, base_url, secrets_seen):
        self.base_url = base_url
        self.secrets_seen = secrets_seen
        self.http = requests.Session()

    def __repr__(self):
        return f"instance {self.base_url}"

    def call(self, method, path, token=None, headers=None, **kwargs):
        headers = dict(headers or {}, **({"Authorization": f"Bearer {token}"} if token else {}))
        return self.http.request(method, self.base_url + path, headers=headers, timeout=HTTP_TIMEOUT, **kwargs)

    def ping(self, token):
        return self.call("GET", "/api/v1/ping-auth", token)

    def register(self, email, password=PASSWORD):
        response = self.call("POST", "/api/auth/register", json={"email": email, "password": password})
        assert response.status_code == 201, describe(response)
        return response.json()["user"]

    def login(self, email, password=PASSWORD, device="pytest"):
        response = self.call("POST", "/api/auth/login", json={"email": email, "password": password, "deviceName": device})
        assert response.status_code == 200, describe(response)
        return response.json()

    def create_token(self, access_token, name="script", days=None):
        body = {"name": name} if days is None else {"name": name, "expiresInDays": days}
        response = self.call("POST", "/api/tokens", access_token, json=body)
        assert response.status_code == 201, describe(response)
        made = response.json()
        self.secrets_seen.add(made["token"])
        return made

    def tokens(self, token):
        response = self.call("GET", "/api/tokens", token)
        assert response.status_code == 200, describe(response)
        return {t["id"]: t for t in response.json()["tokens"]}

    def revoke_token(self, access_token, token_id):
        response = self.call("DELETE", f"/api/tokens/{token_id}", access_token)
        assert response.status_code == 204, describe(response)


def assert_accepted(instances, token, what):
    for instance in instances:
        response = instance.ping(token)
        assert response.status_code == 200, f"{what} on {instance}: {describe(response)}"


def assert_refused(instances, token, what, code="token_revoked"):
    for instance in instances:
        response = instance.ping(token)
        assert (response.status_code, problem_code(response)) == (401, code), f"{what} on {instance}: {describe(response)}"


def assert_refused_within(instances, token, bound, what, since):
    """Polls every instance until it refuses the token with 401 token_revoked; fails when one takes longer than
    `bound` from `since` (a time.monotonic()) or answers anything but 200 or 401 on the way."""
    for instance in instances:
        while True:
            response = instance.ping(token)
            elapsed = time.monotonic() - since
            if response.status_code == 401:
                assert problem_code(response) == "token_revoked", f"{what} on {instance}: {describe(response)}"
                assert elapsed <= bound, f"{what}: {instance} refused it only after {elapsed:.2f} s"
                break
            assert response.status_code == 200, f"{what} on {instance}: {describe(response)}"
            assert elapsed < bound + 5, f"{what}: {instance} still accepts it {elapsed:.2f} s later"
            time.sleep(0.02)


def assert_no_secret_in(text, secrets_seen, where):
    """No secret and not its random part (a log that cut the prefix off would still leak it)."""
    for secret in secrets_seen:
        assert secret not in text and secret[4:47] not in text, f"an API token's secret is in {where}"


class SQLiteServer:
    """`tessera serve` on a SQLite file of the test's own, restartable on the same file (on another port)."""

    def __init__(self, jwt_secret, directory, secrets_seen):
        self.directory = directory
        self.path = directory / "tessera.sqlite"
        self.url = f"sqlite://{self.path}"
        self.env = tessera_environment(jwt_secret, self.url, {"LOG_LEVEL": "trace"})
        self.secrets_seen = secrets_seen
        self.launches = []
        self.api = None
        self.start()

    def start(self):
        launch = TesseraLaunch(self.url, self.env, str(self.directory / f"server-{len(self.launches)}.log"))
        self.launches.append(launch)
        self.api = API(launch.wait_until_healthy().base_url, self.secrets_seen)

    def stop(self):
        self.launches[-1].stop()

    @property
    def pid(self):
        return self.launches[-1].process.pid

    def logs(self):
        return "".join(launch.log() for launch in self.launches)

    def cli(self, *args, stdin=None):
        result = subprocess.run([BINARY, *args], env=self.env, input=stdin, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"tessera {' '.join(args)}: {result.returncode}\n{result.stdout}{result.stderr}"
        return result

    def add_admin(self):
        email = new_email("admin")
        self.cli("users", "add", email, "--admin", "--password-stdin", stdin=ADMIN_PASSWORD + "\n")
        return email, self.api.login(email, ADMIN_PASSWORD)

    def database(self):
        return sqlite3.connect(self.path, timeout=10)


@pytest.fixture
def secrets_seen():
    return set()


@pytest.fixture
def server(jwt_secret, tmp_path, secrets_seen):
    """A SQLite server; at teardown its logs hold none of the secrets the test was given (pytest prints the log
    tail only when the test failed)."""
    server = SQLiteServer(jwt_secret, tmp_path, secrets_seen)
    try:
        yield server
    finally:
        server.stop()
        logs = server.logs()
        print("\n".join(line for line in logs.splitlines() if "[ServiceLifecycle]" not in line)[-4000:])
        assert_no_secret_in(logs, secrets_seen, "the server's log (stdout and stderr, LOG_LEVEL=trace)")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1))


# ---------------------------------------------------------------------------------------------------------------
# One instance, SQLite


def test_a_token_is_shown_once_and_only_its_sha256_is_stored(server):
    """Attack: a copy of the database (a backup, a replica, a stolen disk) must not hold a usable token. The secret
    is answered once, to its creator, and every table and every byte of the database files is searched for it."""
    api = server.api
    alice = new_email("alice")
    api.register(alice)
    session = api.login(alice)["accessToken"]

    response = api.call("POST", "/api/tokens", session, json={"name": "CI deploys"}, headers={"User-Agent": "ci-setup/1.0"})
    assert response.status_code == 201, describe(response)
    assert response.headers["Cache-Control"] == "no-store"
    made = response.json()
    server.secrets_seen.add(made["token"])
    assert set(made) == {"token", "id", "name", "createdAt", "expiresAt"}
    secret = made["token"]
    assert TOKEN_SHAPE.match(secret), secret
    assert secret[-8:] == checksum(secret[4:47]), "the checksum is the one APIToken.swift documents"
    assert made["name"] == "CI deploys"
    assert parse_time(made["expiresAt"]) - parse_time(made["createdAt"]) == 10 * DAY, "TOKEN_EXPIRY_DAYS' default"
    short = api.create_token(session, "short", days=3)
    assert parse_time(short["expiresAt"]) - parse_time(short["createdAt"]) == 3 * DAY
    assert short["token"] != secret

    # It works on every bearer route, as its user.
    assert_accepted([api], secret, "a new token")
    me = api.call("GET", "/api/me", secret)
    assert me.status_code == 200 and me.json()["email"] == alice, describe(me)

    # Listed by the session and by the token itself, never with its secret.
    for caller in (session, secret):
        response = api.call("GET", "/api/tokens", caller)
        assert response.status_code == 200, describe(response)
        assert_no_secret_in(response.text, server.secrets_seen, "GET /api/tokens")
        listed = {t["id"]: t for t in response.json()["tokens"]}
        assert set(listed) == {made["id"], short["id"]}
        assert set(listed[made["id"]]) == {"id", "name", "createdAt", "lastUsedAt", "expiresAt", "invalidatedAt", "active"}
        assert listed[made["id"]]["active"] is True and listed[made["id"]]["invalidatedAt"] is None

    server.stop()
    db = server.database()
    try:
        rows = db.execute("SELECT id, token_hash, ip, user_agent FROM api_tokens ORDER BY created_at").fetchall()
        assert {row[0]: row[1] for row in rows} == {
            made["id"]: hashlib.sha256(secret.encode()).hexdigest(),
            short["id"]: hashlib.sha256(short["token"].encode()).hexdigest(),
        }
        assert rows[0][2:] == ("127.0.0.1", "ci-setup/1.0"), "the creating request's address and user agent are kept"
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        assert "api_tokens" in tables and len(tables) > 5, tables
        for table in tables:
            text = "\n".join(repr(row) for row in db.execute(f'SELECT * FROM "{table}"'))
            assert_no_secret_in(text, server.secrets_seen, f"table {table}")
    finally:
        db.close()
    # And not in any byte of the files, the write-ahead log included (free pages too).
    for path in server.directory.glob("tessera.sqlite*"):
        data = path.read_bytes()
        for token in server.secrets_seen:
            assert token[4:47].encode() not in data, f"a secret is in the bytes of {path.name}"


def test_bad_requests_get_a_problem_and_an_api_token_cannot_make_tokens(server):
    """Attack: a leaked API token minting more tokens (that would outlive its revocation), or taking another user's
    token away; and input that must be refused with a stable code, never a 500."""
    api = server.api
    alice, bob = new_email("alice"), new_email("bob")
    api.register(alice)
    api.register(bob)
    session = api.login(alice)["accessToken"]
    token = api.create_token(session, "alice's")

    refused = api.call("POST", "/api/tokens", token["token"], json={"name": "child"})
    assert (refused.status_code, problem_code(refused)) == (403, "forbidden"), describe(refused)
    assert len(api.tokens(session)) == 1

    for body in ({"name": ""}, {"name": "   "}, {"name": "x" * 101}, {"name": "tab\there"}, {"name": "zero\u200bwidth"},
                 {"name": "n", "expiresInDays": 0}, {"name": "n", "expiresInDays": 366}, {"name": "n", "expiresInDays": -1},
                 {"name": "n", "expiresInDays": "7"}, {"name": "n", "expiresInDays": 1.5}, {}, {"name": None}, [1]):
        response = api.call("POST", "/api/tokens", session, json=body)
        assert response.status_code == 400 and problem_code(response), f"{body!r}: {describe(response)}"
    response = api.call("POST", "/api/tokens", session, data="name=x", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert 400 <= response.status_code < 500 and problem_code(response), describe(response)
    assert len(api.tokens(session)) == 1, "nothing was made by a refused request"
    longest = api.create_token(session, "a year", days=365)
    assert parse_time(longest["expiresAt"]) - parse_time(longest["createdAt"]) == 365 * DAY

    bobs = api.create_token(api.login(bob)["accessToken"], "bob's")
    for token_id in ("not-a-uuid", "00000000-0000-0000-0000-000000000000", bobs["id"]):
        response = api.call("DELETE", f"/api/tokens/{token_id}", session)
        assert (response.status_code, problem_code(response)) == (404, "api_token_not_found"), f"{token_id}: {describe(response)}"
    assert_accepted([api], bobs["token"], "bob's token after alice tried to revoke it")

    # Revoked twice: the second is a 404, nothing more.
    api.revoke_token(session, token["id"])
    again = api.call("DELETE", f"/api/tokens/{token['id']}", session)
    assert (again.status_code, problem_code(again)) == (404, "api_token_not_found"), describe(again)
    assert_refused([api], token["token"], "a revoked token")
    listed = api.tokens(session)[token["id"]]
    assert listed["active"] is False and listed["invalidatedAt"] is not None


def test_an_expired_token_is_refused(server):
    """The lifetime is enforced: a token whose `expires_at` has passed is refused, even by an instance that
    remembered it. The shortest lifetime one can ask for is a day, so the test moves `expires_at` into the past in
    the database while the server is stopped."""
    api = server.api
    alice = new_email("alice")
    api.register(alice)
    session = api.login(alice)["accessToken"]
    expiring = api.create_token(session, "expiring", days=1)
    lasting = api.create_token(session, "lasting", days=1)
    assert_accepted([api], expiring["token"], "before it expires")
    assert_accepted([api], lasting["token"], "before it expires")

    server.stop()
    db = server.database()
    try:
        with db:
            moved = db.execute("UPDATE api_tokens SET expires_at = ? WHERE id = ?", (int(time.time() * 1000) - 1000, expiring["id"])).rowcount
    finally:
        db.close()
    assert moved == 1
    server.start()
    api = server.api

    assert_refused([api], expiring["token"], "an expired token", code="invalid_token")
    assert_accepted([api], lasting["token"], "the other token, not expired")
    session = api.login(alice)["accessToken"]
    assert api.tokens(session)[expiring["id"]]["active"] is False
    assert api.tokens(session)[lasting["id"]]["active"] is True


CUTS = ["sign out of all devices", "password change", "password reset by an admin", "admin revoke", "deactivation", "revoke-all"]


@pytest.mark.parametrize("cut", CUTS)
def test_every_cut_of_the_user_refuses_their_api_tokens(server, cut):
    """Attack: a script's token that survives what the user or an operator did to end every way into the account
    (a leaked token is exactly why one signs out everywhere or changes a password). Each cut refuses the token at
    once; a token made after the cut works (the cut is in the past)."""
    api = server.api
    _, admin = server.add_admin()
    admin_token = admin["accessToken"]
    alice = new_email("alice")
    user_id = api.register(alice)["id"]
    session = api.login(alice, device="laptop")["accessToken"]
    made = api.create_token(session, "deploys")
    other_session_token = api.create_token(api.login(alice, device="phone")["accessToken"], "made on the phone")
    bystander = new_email("bystander")
    api.register(bystander)
    bystanders = api.create_token(api.login(bystander)["accessToken"], "bystander's")
    for token in (made, other_session_token, bystanders):
        assert_accepted([api], token["token"], f"{token['name']} before the cut")

    password = PASSWORD
    if cut == "sign out of all devices":
        response = api.call("POST", "/api/auth/logout-all", session)
    elif cut == "password change":
        password = "a brand new password"
        response = api.call("POST", "/api/me/password", session, json={"currentPassword": PASSWORD, "newPassword": password})
    elif cut == "password reset by an admin":
        password = "reset by the admin"
        response = api.call("POST", f"/api/admin/users/{user_id}/password", admin_token, json={"newPassword": password})
    elif cut == "admin revoke":
        response = api.call("POST", "/api/admin/revoke", admin_token, json={"userIds": [user_id], "reason": "leaked token"})
    elif cut == "deactivation":
        response = api.call("POST", f"/api/admin/users/{user_id}/deactivate", admin_token)
    else:
        response = api.call("POST", "/api/admin/revoke-all", admin_token, json={"reason": "incident"})
    assert response.status_code in (200, 204), f"{cut}: {describe(response)}"

    assert_refused([api], made["token"], f"the token after {cut}")
    assert_refused([api], other_session_token["token"], f"a token made on another device after {cut}")
    if cut == "revoke-all":
        assert_refused([api], bystanders["token"], "everyone's tokens after revoke-all")
    else:
        assert_accepted([api], bystanders["token"], f"another user's token after {cut} of alice")

    if cut == "deactivation":
        # Activating the account again does not revive what deactivation cut.
        response = api.call("POST", f"/api/admin/users/{user_id}/activate", admin_token)
        assert response.status_code == 200, describe(response)
        assert_refused([api], made["token"], "the token after the account was activated again")
    fresh_session = api.login(alice, password)["accessToken"]
    assert api.tokens(fresh_session)[made["id"]]["active"] is False, "the list says it is no longer accepted"
    fresh = api.create_token(fresh_session, "after the cut")
    assert_accepted([api], fresh["token"], f"a token made after {cut}")


def test_an_api_token_cannot_change_the_password(server):
    """Attack: a token leaked from a CI log used to take the account over by setting a new password (that would also
    cut the owner's sessions). The password change needs a signed-in session; nothing changes."""
    api = server.api
    alice = new_email("alice")
    api.register(alice)
    made = api.create_token(api.login(alice)["accessToken"], "ci")
    response = api.call("POST", "/api/me/password", made["token"], json={"currentPassword": PASSWORD, "newPassword": "taken over"})
    assert response.status_code in (401, 403) and problem_code(response), describe(response)
    refused = api.call("POST", "/api/auth/login", json={"email": alice, "password": "taken over"})
    assert refused.status_code == 401, describe(refused)
    api.login(alice)


def test_signing_out_the_device_that_made_a_token_leaves_the_token_working(server):
    """A token is for scripts, not for the browser that made it: signing that browser out (POST /api/auth/logout,
    or that session signed out from another device) must not break the user's CI."""
    api = server.api
    alice = new_email("alice")
    api.register(alice)
    laptop = api.login(alice, device="laptop")
    made = api.create_token(laptop["accessToken"], "deploys")
    response = api.call("POST", "/api/auth/logout", laptop["accessToken"])
    assert response.status_code == 204, describe(response)
    assert_refused([api], laptop["accessToken"], "the signed-out session's access token")
    assert_accepted([api], made["token"], "the token the signed-out session made")

    phone = api.login(alice, device="phone")
    second = api.create_token(phone["accessToken"], "backups")
    desk = api.login(alice, device="desk")["accessToken"]
    response = api.call("DELETE", f"/api/auth/sessions/{phone['sessionId']}", desk)
    assert response.status_code == 204, describe(response)
    assert_refused([api], phone["accessToken"], "the phone signed out from the desk")
    assert_accepted([api], second["token"], "the token the phone made")
    assert_accepted([api], made["token"], "the first token")


def test_a_flood_of_made_up_tokens_is_refused_and_does_not_fill_memory(server):
    """Attack: millions of random `tsr_` tokens, to fill the server's memory with remembered misses or to make it
    read the database for each. 2,000 with random checksums are refused with 401 (no read); 2,000 with correct
    checksums (anyone can compute one) are refused too, with 401 after a read or, past the instance's ration of
    reads, 503 and Retry-After (never 200); the resident memory grows by a few MB at most, and the real token, in use
    meanwhile, keeps working."""
    api = server.api
    alice = new_email("alice")
    api.register(alice)
    made = api.create_token(api.login(alice)["accessToken"], "real")
    assert_accepted([api], made["token"], "the real token")

    def flood(count, valid_checksum):
        """Sends `count` made-up tokens from 4 connections; returns how many got 401 and how many 503."""
        answers = {"401": 0, "503": 0}
        failures = []
        lock = threading.Lock()

        def worker(tokens):
            http = requests.Session()
            for token in tokens:
                response = http.get(api.base_url + "/api/v1/ping-auth", headers={"Authorization": f"Bearer {token}"}, timeout=HTTP_TIMEOUT)
                answer = (response.status_code, problem_code(response))
                with lock:
                    if answer == (401, "invalid_token"):
                        answers["401"] += 1
                    elif valid_checksum and answer == (503, "busy") and response.headers.get("Retry-After"):
                        answers["503"] += 1
                    else:
                        failures.append(describe(response))
        tokens = [random_token(valid_checksum) for _ in range(count)]
        threads = [threading.Thread(target=worker, args=(tokens[i::4],)) for i in range(4)]
        for thread in threads:
            thread.start()
        assert_accepted([api], made["token"], "the real token during the flood")
        for thread in threads:
            thread.join()
        assert failures == [], failures[:3]
        return answers

    flood(400, False)   # warm up: connections, caches, allocator arenas
    flood(400, True)
    before = rss_kib(server.pid)
    started = time.monotonic()
    assert flood(2000, False) == {"401": 2000, "503": 0}
    random_checksums = time.monotonic() - started
    after_random = rss_kib(server.pid)
    correct_checksums = flood(2000, True)
    assert correct_checksums["401"] > 0, correct_checksums
    after_valid = rss_kib(server.pid)
    print(f"RSS {before} KiB, after 2,000 random checksums {after_random} KiB ({random_checksums:.1f} s), "
          f"after 2,000 correct checksums {after_valid} KiB ({correct_checksums})")
    assert after_random - before < 4 * 1024, f"RSS grew by {after_random - before} KiB with made-up checksums"
    assert after_valid - before < 6 * 1024, f"RSS grew by {after_valid - before} KiB with correct checksums"
    assert_accepted([api], made["token"], "the real token after the flood")


def test_last_use_is_written_within_six_seconds(server):
    """`last_used_at` is written in batches, not per request: within ~6 s of a use it is in the database."""
    api = server.api
    alice = new_email("alice")
    api.register(alice)
    session = api.login(alice)["accessToken"]
    made = api.create_token(session, "deploys")
    assert api.tokens(session)[made["id"]]["lastUsedAt"] is None
    time.sleep(1.1)   # a use in a later second than the creation
    used_at = datetime.datetime.now(datetime.timezone.utc)
    assert_accepted([api], made["token"], "the token")
    used = time.monotonic()

    def written():
        db = server.database()
        try:
            return db.execute("SELECT last_used_at FROM api_tokens WHERE id = ?", (made["id"],)).fetchone()[0]
        finally:
            db.close()

    millis, _ = wait_until(written, LAST_USE_BOUND + 1, 0.1, "last_used_at in the database")
    elapsed = time.monotonic() - used
    assert elapsed <= LAST_USE_BOUND, f"last_used_at written only after {elapsed:.1f} s"
    stored = datetime.datetime.fromtimestamp(millis / 1000, datetime.timezone.utc)
    assert abs((stored - used_at).total_seconds()) < 2, (stored, used_at)
    listed = api.tokens(session)[made["id"]]["lastUsedAt"]
    assert listed is not None and abs((parse_time(listed) - used_at).total_seconds()) < 2, listed


# ---------------------------------------------------------------------------------------------------------------
# Two instances, PostgreSQL


@pytest.fixture
def pg(jwt_secret, tmp_path, secrets_seen):
    """A database of its own on the test cluster (test_postgres_instances.Deployment, which skips without it);
    `pg.instances(n)` starts n instances logging at trace. At teardown, no secret is in any instance's log."""
    if not os.environ.get("TESSERA_TEST_POSTGRES_URL") or not os.environ.get("TESSERA_TEST_PG_CTL"):
        pytest.skip("TESSERA_TEST_POSTGRES_URL and TESSERA_TEST_PG_CTL are unset: no PostgreSQL cluster to run on")
    from test_postgres_instances import Deployment, ensure_cluster_running
    ensure_cluster_running()
    deployment = Deployment(jwt_secret, tmp_path, {"LOG_LEVEL": "trace"})
    deployment.instances = lambda count: [API(i.base_url, secrets_seen) for i in deployment.start(count)]
    try:
        yield deployment
    finally:
        logs = "".join(launch.log() for launch in deployment.launches)
        print(deployment.logs())
        deployment.close()
        assert_no_secret_in(logs, secrets_seen, "an instance's log (LOG_LEVEL=trace)")


def test_a_token_made_on_one_instance_works_on_another_and_a_revoke_reaches_both_within_a_second(pg):
    """Attack: a leaked token replayed against the other instance behind the load balancer after its owner revoked
    it on the first. Each instance remembers a token it has seen; its revocation must still reach it within a
    second, whichever instance revoked it."""
    a, b = pg.instances(2)
    alice = new_email("alice")
    a.register(alice)
    on_a = a.login(alice)["accessToken"]
    on_b = b.login(alice)["accessToken"]
    first = a.create_token(on_a, "first")
    second = b.create_token(on_b, "second")
    # Used on both: each instance now remembers both, and checks them without the database.
    for _ in range(3):
        assert_accepted([a, b], first["token"], "the token made on A")
        assert_accepted([a, b], second["token"], "the token made on B")
    assert set(b.tokens(on_b)) == set(a.tokens(first["token"])) == {first["id"], second["id"]}

    b.revoke_token(on_b, first["id"])
    assert_refused_within([a, b], first["token"], PROPAGATION_BOUND, "the token made on A, revoked on B", time.monotonic())
    a.revoke_token(on_a, second["id"])
    assert_refused_within([b, a], second["token"], PROPAGATION_BOUND, "the token made on B, revoked on A", time.monotonic())
    for instance, session in ((a, on_a), (b, on_b)):
        listed = instance.tokens(session)
        assert all(t["invalidatedAt"] is not None and t["active"] is False for t in listed.values()), listed


def test_on_postgres_only_the_hash_is_stored_and_expiry_and_cuts_reach_every_instance(pg):
    """The same promises on PostgreSQL: no table holds a secret; a token whose expiry has passed is refused by an
    instance that reads it for the first time; a user's sign-out everywhere on A and an operator's `tessera revoke`
    beside the servers refuse the user's tokens on B within a second; the last use seen by B is in the database
    within ~6 s."""
    a, b = pg.instances(2)
    alice = new_email("alice")
    a.register(alice)
    session = a.login(alice)["accessToken"]
    expiring = a.create_token(session, "expiring", days=1)
    kept = a.create_token(session, "kept")
    used_on_b = time.monotonic()
    assert_accepted([b], kept["token"], "a token made on A, used on B")

    with pg.connect() as conn:
        rows = dict(conn.execute("SELECT id, token_hash FROM api_tokens").fetchall())
        assert rows == {t["id"]: hashlib.sha256(t["token"].encode()).hexdigest() for t in (expiring, kept)}
        tables = [name for (name,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        assert "api_tokens" in tables, tables
        for table in tables:
            text = "\n".join(row[0] for row in conn.execute(f'SELECT t::text FROM "{table}" t'))
            assert_no_secret_in(text, a.secrets_seen, f"table {table}")
        conn.execute("UPDATE api_tokens SET expires_at = %s WHERE id = %s", (int(time.time() * 1000) - 1000, expiring["id"]))
    assert_refused([a, b], expiring["token"], "a token past its expiry, first seen now", code="invalid_token")

    def last_use_written():
        with pg.connect() as conn:
            return conn.execute("SELECT last_used_at FROM api_tokens WHERE id = %s", (kept["id"],)).fetchone()[0]

    wait_until(last_use_written, LAST_USE_BOUND + 1, 0.1, "B's last use of the token in the database")
    assert time.monotonic() - used_on_b <= LAST_USE_BOUND + 0.5

    response = a.call("POST", "/api/auth/logout-all", session)
    assert response.status_code == 204, describe(response)
    assert_refused_within([a, b], kept["token"], PROPAGATION_BOUND, "alice's token after she signed out everywhere on A", time.monotonic())

    later = a.create_token(a.login(alice)["accessToken"], "after signing out everywhere")
    assert_accepted([a, b], later["token"], "a token made after the sign-out")
    revoked = subprocess.run([BINARY, "revoke", "--user", alice, "--reason", "leaked"], env=pg.env, capture_output=True, text=True, timeout=60)
    acknowledged = time.monotonic()
    assert revoked.returncode == 0, revoked.stderr
    assert_refused_within([a, b], later["token"], PROPAGATION_BOUND, "alice's token after `tessera revoke`", acknowledged)



def test_the_cli_creates_lists_and_revokes_a_token_that_a_running_server_then_refuses(jwt_secret):
    """`tessera tokens create|list|revoke` beside a running server: the JSON the API writes, the secret printed
    once, and a CLI revoke refused by the server within a second."""
    with running_tessera(jwt_secret) as server:
        email = new_email("cli-tokens")
        assert requests.post(f"{server.base_url}/api/auth/register", json={"email": email, "password": "correct horse battery"},
                             timeout=10).status_code == 201
        made = json.loads(run_cli(server, "tokens", "create", email, "--name", "deploy", "--days", "7", "--json").stdout)
        assert set(made) == {"token", "id", "name", "createdAt", "expiresAt"}
        assert made["name"] == "deploy" and made["token"].startswith("tsr_")
        headers = {"Authorization": f"Bearer {made['token']}"}
        assert requests.get(f"{server.base_url}/api/v1/ping-auth", headers=headers, timeout=10).status_code == 200

        listed = json.loads(run_cli(server, "tokens", "list", email, "--json").stdout)["tokens"]
        assert [(t["id"], t["name"], t["active"], t["invalidatedAt"]) for t in listed] == [(made["id"], "deploy", True, None)]
        assert made["token"] not in json.dumps(listed)

        run_cli(server, "tokens", "revoke", made["id"])
        deadline = time.monotonic() + 1
        while requests.get(f"{server.base_url}/api/v1/ping-auth", headers=headers, timeout=10).status_code != 401:
            assert time.monotonic() < deadline, "the server still accepts a token the CLI revoked"
            time.sleep(0.02)
        revoked = json.loads(run_cli(server, "tokens", "list", email, "--json").stdout)["tokens"]
        assert revoked[0]["active"] is False and revoked[0]["invalidatedAt"] is not None
        assert "no such API token" in run_cli(server, "tokens", "revoke", made["id"], expect=1).stderr
