"""Several real `tessera serve` processes on one real PostgreSQL cluster: revocations reach every instance within a
second, whatever order transactions commit in, through long transactions elsewhere, killed connections, a crashed
and restarted cluster, a start of two instances at once on an empty database, and a copy from SQLite.

Needs the cluster scripts/test starts (the module is skipped when TESSERA_TEST_POSTGRES_URL is unset):
    TESSERA_TEST_POSTGRES_URL  postgres://postgres@127.0.0.1:PORT/tessera_test (a superuser, trust authentication)
    TESSERA_TEST_PG_CTL        pg_ctl for that cluster (`stop -m immediate -w`, `start -w -t 60`, `status`)
    TESSERA_TEST_PG_PORT, TESSERA_TEST_PG_BIN
Each test creates its own database (tessera_it_<random>), starts its instances on it with one JWT_SECRET and
BCRYPT_COST=4, and drops the database afterwards. Server logs stay in the test's tmp_path (pytest keeps the last
runs' under /tmp/pytest-of-$USER) and are quoted in failure messages.
"""
import base64
import json
import os
import re
import secrets
import subprocess
import threading
import time
import urllib.parse

import pytest
import requests

POSTGRES_URL = os.environ.get("TESSERA_TEST_POSTGRES_URL")
if not POSTGRES_URL:
    pytest.skip("TESSERA_TEST_POSTGRES_URL is unset: scripts/test starts a PostgreSQL cluster and sets it",
                allow_module_level=True)

import psycopg  # noqa: E402  (only needed, and only installed by requirements.txt, when PostgreSQL is)
from psycopg import sql  # noqa: E402

from conftest import (BINARY, TesseraLaunch, describe, new_email, problem_code, require_binary, running_tessera,  # noqa: E402
                      tessera_environment)

PG_CTL = os.environ.get("TESSERA_TEST_PG_CTL")

# What Tessera promises (README, RevocationLogFollower, RevocationIndex).
PROPAGATION_BOUND = 1.0   # a revocation committed anywhere is enforced by every instance within this
STALENESS_BOUND = 5.0     # an index that cannot read the log for this long fails closed (503)
HTTP_TIMEOUT = 5
PASSWORD = "correct horse battery staple"


# ---------------------------------------------------------------------------------------------------------------
# Helpers


def wait_until(predicate, timeout, interval=0.02, message="condition"):
    """Polls predicate() until it returns something truthy; returns (value, seconds waited). Fails the test with the
    last value seen when timeout passes."""
    start = time.monotonic()
    last = None
    while True:
        last = predicate()
        if last:
            return last, time.monotonic() - start
        if time.monotonic() - start > timeout:
            pytest.fail(f"{message}: not within {timeout} s (last: {last!r})")
        time.sleep(interval)


def database_url(name):
    """TESSERA_TEST_POSTGRES_URL with another database name."""
    parts = urllib.parse.urlsplit(POSTGRES_URL)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


def pg_ctl(*args, timeout=90):
    return subprocess.run([PG_CTL, *args], capture_output=True, text=True, timeout=timeout)


def cluster_running():
    return pg_ctl("status").returncode == 0


def ensure_cluster_running():
    """Starts the cluster if it is down (the crash test stops it; every later test needs it)."""
    if not cluster_running():
        started = pg_ctl("start", "-w", "-t", "60")
        assert started.returncode == 0, f"pg_ctl start failed: {started.stdout}{started.stderr}"
    wait_until(can_connect, 30, 0.2, "the PostgreSQL cluster accepts connections")


def can_connect():
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def jwt_claims(token):
    """The payload of a JWT, decoded without checking it (the test only reads `sid`, `sub`)."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


class Instance:
    """One running `tessera serve` on the test's database, with the API calls the tests make."""

    def __init__(self, name, process):
        self.name = name
        self.process = process
        self.base_url = process.base_url

    def __repr__(self):
        return f"instance {self.name} ({self.base_url})"

    def log(self):
        return self.process.log()

    def get(self, path, token=None, timeout=HTTP_TIMEOUT):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.get(self.base_url + path, headers=headers, timeout=timeout)

    def post(self, path, body=None, token=None, timeout=HTTP_TIMEOUT):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.post(self.base_url + path, json=body, headers=headers, timeout=timeout)

    def ping(self, token):
        """GET /api/v1/ping-auth: 200 for a live token, 401 token_revoked for a revoked one, 503 when stale."""
        return self.get("/api/v1/ping-auth", token)

    def ready(self):
        return self.get("/ready")

    def register(self, email):
        response = self.post("/api/auth/register", {"email": email, "password": PASSWORD})
        assert response.status_code == 201, f"register {email} on {self}: {describe(response)}"
        return response.json()["user"]

    def login(self, email, device="pytest"):
        response = self.post("/api/auth/login", {"email": email, "password": PASSWORD, "deviceName": device})
        assert response.status_code == 200, f"login {email} on {self}: {describe(response)}"
        return response.json()

    def logout(self, token):
        response = self.post("/api/auth/logout", token=token)
        assert response.status_code == 204, f"logout on {self}: {describe(response)}"


def assert_accepted(instances, token, what):
    for instance in instances:
        response = instance.ping(token)
        assert response.status_code == 200, f"{what} on {instance}: expected 200, got {describe(response)}"


def assert_refused_within(instances, token, bound, what, since=None):
    """Polls every instance until it refuses the token with 401 token_revoked; fails if any takes longer than bound
    (counted from `since`, a time.monotonic(), or from now), or answers anything but 200 or 401 on the way."""
    since = time.monotonic() if since is None else since
    for instance in instances:
        deadline = since + max(bound, 0) + 5   # keep polling past the bound, to report how late it was
        while True:
            response = instance.ping(token)
            elapsed = time.monotonic() - since
            if response.status_code == 401:
                assert problem_code(response) == "token_revoked", f"{what} on {instance}: {describe(response)}"
                assert 'error="invalid_token"' in response.headers.get("WWW-Authenticate", "")
                assert elapsed <= bound, f"{what}: {instance} refused it only after {elapsed:.2f} s (bound {bound} s)"
                break
            assert response.status_code == 200, f"{what} on {instance}: expected 200 or 401, got {describe(response)}"
            assert time.monotonic() < deadline, f"{what}: {instance} still accepts it {elapsed:.2f} s later"
            time.sleep(0.02)


class Deployment:
    """A database of its own on the test cluster, the `tessera serve` instances started on it (one JWT_SECRET) and
    `tessera` commands beside them. close() stops the instances and drops the database."""

    def __init__(self, jwt_secret, log_dir, extra_env=None):
        require_binary()
        self.jwt_secret = jwt_secret
        self.log_dir = log_dir
        self.name = f"tessera_it_{secrets.token_hex(6)}"
        self.url = database_url(self.name)
        self.env = tessera_environment(jwt_secret, self.url, extra_env)
        self.launches = []
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))

    def start(self, count=1):
        """Starts `count` instances at the same moment; returns them once each answers /health."""
        first = len(self.launches)
        launches = [TesseraLaunch(self.url, self.env, str(self.log_dir / f"server-{chr(ord('A') + first + i)}.log"))
                    for i in range(count)]
        self.launches.extend(launches)
        return [Instance(chr(ord("A") + first + i), launch.wait_until_healthy()) for i, launch in enumerate(launches)]

    def cli(self, *args, timeout=60):
        """Runs `tessera ARGS` with the instances' DATABASE_URL and JWT_SECRET."""
        return subprocess.run([BINARY, *args], env=self.env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def connect(self, autocommit=True):
        return psycopg.connect(self.url, autocommit=autocommit, connect_timeout=5)

    def logs(self):
        """Every instance's log, for failure messages."""
        parts = []
        for launch in self.launches:
            text = launch.log()
            parts.append(f"----- {os.path.basename(launch.log_path)} (last 4000 characters)\n{text[-4000:]}")
        return "\n".join(parts)

    def close(self):
        for launch in self.launches:
            launch.stop()
        try:
            ensure_cluster_running()
            with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name)))
        except Exception as error:  # a failed drop must not hide the test's own failure
            print(f"could not drop {self.name}: {error}")


@pytest.fixture
def deployment(jwt_secret, tmp_path):
    """A fresh database and the instances a test starts on it. Their logs are printed at teardown: pytest shows
    that output only when the test failed."""
    if not PG_CTL:
        pytest.skip("TESSERA_TEST_PG_CTL is unset")
    ensure_cluster_running()
    deployment = Deployment(jwt_secret, tmp_path)
    try:
        yield deployment
    finally:
        print(deployment.logs())
        deployment.close()


def listening_backends(conn, database):
    """The pids of the database's backends whose last statement was a LISTEN (each instance keeps one listening)."""
    return {row[0] for row in conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND query ILIKE 'LISTEN%%'", (database,))}


# ---------------------------------------------------------------------------------------------------------------
# Tests


def test_sign_out_on_one_instance_and_cli_revoke_reach_every_instance_within_a_second(deployment):
    """Attack: a stolen token replayed against another instance behind the load balancer after the owner signed out
    on the first, or after an operator revoked the account with `tessera revoke` from a shell beside the servers.
    Every instance must refuse it within a second, and refuse nothing else."""
    a, b = deployment.start(2)

    alice = new_email("alice")
    a.register(alice)
    signed_in = a.login(alice, "laptop")
    other_device = a.login(alice, "phone")
    token = signed_in["accessToken"]
    assert_accepted([a, b], token, "a token signed on A")

    a.logout(token)
    acknowledged = time.monotonic()
    response = a.ping(token)
    assert response.status_code == 401 and problem_code(response) == "token_revoked", \
        f"A applies its own sign-out before answering it; got {describe(response)}"
    assert_refused_within([b], token, PROPAGATION_BOUND, "alice's signed-out session", since=acknowledged)
    assert_accepted([a, b], other_device["accessToken"], "alice's other session (only one was signed out)")

    bob = new_email("bob")
    b.register(bob)
    bob_on_a = a.login(bob, "laptop")["accessToken"]
    bob_on_b = b.login(bob, "phone")["accessToken"]
    assert_accepted([a, b], bob_on_a, "bob's token from A")
    assert_accepted([a, b], bob_on_b, "bob's token from B")

    revoked = deployment.cli("revoke", "--user", bob, "--reason", "stolen phone")
    acknowledged = time.monotonic()
    assert revoked.returncode == 0, f"tessera revoke: exit {revoked.returncode}\n{revoked.stdout}{revoked.stderr}"
    assert "revoked every token of 1 user" in revoked.stdout, revoked.stdout
    assert_refused_within([a, b], bob_on_a, PROPAGATION_BOUND, "bob's token from A after `tessera revoke`", acknowledged)
    assert_refused_within([a, b], bob_on_b, PROPAGATION_BOUND, "bob's token from B after `tessera revoke`", acknowledged)
    assert_accepted([a, b], other_device["accessToken"], "alice's other session (the CLI revoked only bob)")
    # Bob signs in again: the cut is in the past, his new token works everywhere.
    fresh = a.login(bob, "new phone")["accessToken"]
    assert_accepted([a, b], fresh, "bob's token signed after the revoke")


def test_revocation_committed_after_a_later_sequence_number_is_not_skipped(deployment):
    """Fault: sequence numbers are taken at INSERT but become visible at COMMIT, so under concurrent writers a row
    with a smaller `seq` can commit after one with a larger `seq` has already been read. A follower that remembers
    only the highest `seq` it has read (`WHERE seq > last`) skips the late row for good: X's session, signed out in a
    slow transaction, would stay signed in on every other instance. Here T1 inserts X's revocation and stays open,
    Y is signed out through B's API (a larger seq, committed and read by both instances), then T1 commits (without a
    NOTIFY: only the follower's own reads can find it). Both instances must refuse X within a second."""
    a, b = deployment.start(2)
    x_email, y_email = new_email("x"), new_email("y")
    a.register(x_email)
    a.register(y_email)
    x = a.login(x_email)
    y = b.login(y_email)
    x_sid = jwt_claims(x["accessToken"])["sid"]
    assert x_sid.lower() == x["sessionId"].lower(), (x_sid, x["sessionId"])
    assert_accepted([a, b], x["accessToken"], "X before anything")
    assert_accepted([a, b], y["accessToken"], "Y before anything")

    now_ms = int(time.time() * 1000)
    t1 = deployment.connect(autocommit=False)
    try:
        x_seq = t1.execute(
            "INSERT INTO revocations (kind, session_id, until_at, revoked_at, actor_id, reason, cause) "
            "VALUES ('session', %s, %s, %s, %s, 'logout', 'sign_out') RETURNING seq",
            (x_sid.lower(), now_ms + 3_600_000, now_ms, x["user"]["id"].lower()),
        ).fetchone()[0]

        b.logout(y["accessToken"])
        acknowledged = time.monotonic()
        with deployment.connect() as conn:
            y_seq = conn.execute("SELECT max(seq) FROM revocations WHERE session_id = %s",
                                 (jwt_claims(y["accessToken"])["sid"].lower(),)).fetchone()[0]
        assert y_seq is not None and y_seq > x_seq, f"Y's row must have the later seq: X {x_seq}, Y {y_seq}"
        assert_refused_within([a, b], y["accessToken"], PROPAGATION_BOUND, "Y signed out on B", acknowledged)
        # Both followers have now read past Y's seq; X's row is still uncommitted and so not in force anywhere.
        assert_accepted([a, b], x["accessToken"], "X while T1 is open")

        t1.commit()
        committed = time.monotonic()
    finally:
        t1.close()
    assert_refused_within([a, b], x["accessToken"], PROPAGATION_BOUND,
                          f"X's revocation (seq {x_seq}, committed after seq {y_seq})", committed)


def test_a_long_unrelated_transaction_neither_stalls_the_index_nor_delays_revocations(deployment):
    """Fault: a report or a migration holds a transaction open for ten seconds (it holds back the database's xmin).
    A follower that waits for older transactions to finish before reading past them would stop reading, go stale
    after five seconds and answer 503 everywhere, or delay every revocation until the transaction ends. Meanwhile
    /ready on A must stay 200, B must keep accepting live tokens, and sign-outs on A (before and after the staleness
    bound has passed) must be refused by B within a second."""
    a, b = deployment.start(2)
    with deployment.connect() as conn:
        conn.execute("CREATE TABLE long_transaction_scratch (id serial PRIMARY KEY, note text)")
    email = new_email("long")
    a.register(email)
    sessions = [a.login(email, f"device {i}")["accessToken"] for i in range(3)]
    live = sessions[2]
    assert_accepted([a, b], live, "a live token before the long transaction")

    holder = deployment.connect(autocommit=False)
    try:
        holder.execute("INSERT INTO long_transaction_scratch (note) VALUES ('held open')")
        holder.execute("UPDATE long_transaction_scratch SET note = 'still held'")
        with deployment.connect() as conn:
            assert conn.execute("SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction' "
                                "AND datname = %s", (deployment.name,)).fetchone()[0] >= 1
        began = time.monotonic()
        sign_outs = {3.0: sessions[0], STALENESS_BOUND + 1.5: sessions[1]}
        ready_statuses = []
        while time.monotonic() - began < 10:
            held_for = time.monotonic() - began
            for at in sorted(sign_outs):
                if held_for >= at:
                    token = sign_outs.pop(at)
                    a.logout(token)
                    acknowledged = time.monotonic()
                    assert_refused_within([b], token, PROPAGATION_BOUND,
                                          f"a sign-out on A {held_for:.1f} s into the long transaction", acknowledged)
            asked = time.monotonic()
            ready = a.ready()
            ready_statuses.append(ready.status_code)
            assert ready.status_code == 200, \
                f"/ready on A {held_for:.1f} s into the long transaction: {describe(ready)}"
            assert time.monotonic() - asked < 1.5, "/ready must answer within a second"
            response = b.ping(live)
            assert response.status_code == 200, \
                f"a live token on B {held_for:.1f} s into the long transaction: {describe(response)}"
            time.sleep(0.2)
        assert not sign_outs, "every sign-out was made while the transaction was open"
        with deployment.connect() as conn:
            assert conn.execute("SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction' "
                                "AND datname = %s", (deployment.name,)).fetchone()[0] >= 1, \
                "the long transaction was still open at the end"
        holder.commit()
    finally:
        holder.close()
    assert len(ready_statuses) >= 20
    assert_accepted([a, b], live, "the live token after the long transaction")


class Traffic(threading.Thread):
    """Keeps asking every instance /ready and ping-auth with each named token, recording every answer."""

    def __init__(self, instances, tokens):
        super().__init__(daemon=True)
        self.instances = instances
        self.tokens = tokens
        self.stopping = threading.Event()
        self.records = []   # (monotonic time, instance name, what, status or None, code or error text)

    def run(self):
        while not self.stopping.is_set():
            for instance in self.instances:
                for what, token in [("ready", None), *self.tokens.items()]:
                    at = time.monotonic()
                    try:
                        response = instance.ready() if token is None else instance.ping(token)
                        self.records.append((at, instance.name, what, response.status_code, problem_code(response)))
                    except requests.RequestException as error:
                        self.records.append((at, instance.name, what, None, type(error).__name__))
            time.sleep(0.05)

    def stop(self):
        self.stopping.set()
        self.join(timeout=30)

    def where(self, predicate):
        return [record for record in self.records if predicate(record)]


def test_cluster_crash_fails_closed_and_recovers_without_restarting_instances(deployment):
    """Fault: PostgreSQL is killed (`pg_ctl stop -m immediate`) under traffic, right after A acknowledged a sign-out,
    and comes back. While it is down: never a 500, never a 200 for a token revoked before the crash (the index must
    not be emptied or reset), protected routes 503 revocation_index_stale once the index has not heard from the
    database for 5 s, /ready 503, writes 503 database_unavailable. After the restart both instances recover on their
    own: live tokens work again and the sign-out acknowledged just before the crash is enforced on both."""
    a, b = deployment.start(2)
    emails = {what: new_email(what) for what in ("early", "live", "late", "after")}
    for email in emails.values():
        a.register(email)
    early = a.login(emails["early"])["accessToken"]
    live = b.login(emails["live"])["accessToken"]
    late = a.login(emails["late"])["accessToken"]
    a.logout(early)
    assert_refused_within([a, b], early, PROPAGATION_BOUND, "the early sign-out")
    assert_accepted([a, b], live, "the live token")
    assert_accepted([a, b], late, "the late token before its sign-out")

    traffic = Traffic([a, b], {"early": early, "live": live, "late": late})
    traffic.start()
    try:
        time.sleep(0.5)
        a.logout(late)
        late_acknowledged = time.monotonic()
        stopped = pg_ctl("stop", "-m", "immediate", "-w")
        crashed = time.monotonic()
        assert stopped.returncode == 0, f"pg_ctl stop: {stopped.stdout}{stopped.stderr}"

        # Fail closed: a token check cannot be trusted once the index has not heard from the log for 5 s.
        def stale_on(instance):
            response = instance.ping(live)
            assert response.status_code in (200, 503), f"live token on {instance} during the outage: {describe(response)}"
            return response.status_code == 503 and problem_code(response) == "revocation_index_stale"
        for instance in (a, b):
            wait_until(lambda: stale_on(instance), STALENESS_BOUND + 2.5 - (time.monotonic() - crashed), 0.1,
                       f"{instance} answers 503 revocation_index_stale for a live token after the crash")
            response = instance.ready()
            assert response.status_code == 503, f"/ready on {instance} with the cluster down: {describe(response)}"
            assert response.json()["checks"]["database"] == "unreachable", describe(response)
        down_for = time.monotonic() - crashed
        assert down_for < STALENESS_BOUND + 2.5, down_for

        write = a.post("/api/auth/register", {"email": new_email("during"), "password": PASSWORD})
        assert write.status_code == 503 and problem_code(write) == "database_unavailable", \
            f"a write with the cluster down: {describe(write)}"
        assert write.headers.get("Retry-After"), "503 database_unavailable carries Retry-After"

        started = pg_ctl("start", "-w", "-t", "60")
        restarted = time.monotonic()
        assert started.returncode == 0, f"pg_ctl start: {started.stdout}{started.stderr}"

        for instance in (a, b):
            def recovered():
                response = instance.ping(live)
                assert response.status_code in (200, 503), f"live token on {instance} after the restart: {describe(response)}"
                return response.status_code == 200
            _, waited = wait_until(recovered, 15 - (time.monotonic() - restarted), 0.1,
                                   f"{instance} accepts a live token again after the cluster restarted (no restart of the instance)")
            wait_until(lambda: instance.ready().status_code == 200, 15 - (time.monotonic() - restarted), 0.1,
                       f"/ready on {instance} after the cluster restarted")
        recovered_at = time.monotonic()
        for instance in (a, b):
            for what, token in (("early", early), ("late", late)):
                response = instance.ping(token)
                assert response.status_code == 401 and problem_code(response) == "token_revoked", \
                    f"the {what} sign-out after recovery on {instance}: {describe(response)}"

        # Writes and propagation work again.
        after = wait_until(lambda: (lambda r: r.json() if r.status_code == 200 else None)(
            a.post("/api/auth/login", {"email": emails["after"], "password": PASSWORD})), 15, 0.2,
            "a sign-in on A after the restart")[0]["accessToken"]
        assert_accepted([a, b], after, "a token signed after the restart")
        a.logout(after)
        assert_refused_within([b], after, PROPAGATION_BOUND, "a sign-out on A after the restart")
        time.sleep(0.5)
    finally:
        traffic.stop()
        ensure_cluster_running()

    records = traffic.records
    assert len(records) > 50, f"the traffic thread made only {len(records)} requests"
    errors = traffic.where(lambda r: r[3] is None)
    assert not errors, f"requests that got no answer (the server must answer, 503 at worst): {errors[:10]}"
    server_errors = traffic.where(lambda r: r[3] is not None and r[3] >= 500 and r[3] != 503)
    assert not server_errors, f"5xx other than 503: {server_errors[:10]}"
    unexpected_503 = traffic.where(lambda r: r[3] == 503 and r[2] != "ready" and r[4] != "revocation_index_stale")
    assert not unexpected_503, f"a token check answered 503 with another code: {unexpected_503[:10]}"
    early_admitted = traffic.where(lambda r: r[2] == "early" and r[3] == 200)
    assert not early_admitted, f"a token revoked before the crash was admitted: {early_admitted[:10]}"
    late_admitted_on_a = traffic.where(lambda r: r[2] == "late" and r[1] == "A" and r[3] == 200 and r[0] > late_acknowledged)
    assert not late_admitted_on_a, f"A admitted the token it had acknowledged signing out: {late_admitted_on_a[:10]}"
    # B may have admitted the late token only in the staleness window right after the crash (it never heard of the
    # sign-out before the database went away); never once it refused it, and never after recovery.
    first_refusal_on_b = min((r[0] for r in records if r[2] == "late" and r[1] == "B" and r[3] == 401), default=None)
    assert first_refusal_on_b is not None, "B never refused the late token while the traffic ran"
    late_admitted_on_b = traffic.where(lambda r: r[2] == "late" and r[1] == "B" and r[3] == 200 and (
        r[0] > first_refusal_on_b or r[0] > crashed + STALENESS_BOUND or r[0] > restarted))
    assert not late_admitted_on_b, f"B admitted the late token after refusing it or after the staleness bound: {late_admitted_on_b[:10]}"
    stale = traffic.where(lambda r: r[2] == "live" and r[3] == 503)
    assert stale, "the traffic saw no 503 for the live token during the outage"
    assert all(crashed < r[0] < recovered_at for r in stale), "503s only while the cluster was down or recovering"
    ready_down = traffic.where(lambda r: r[2] == "ready" and r[3] == 503)
    assert ready_down and all(crashed - 0.5 < r[0] < recovered_at for r in ready_down), \
        "/ready failed while (and only while) the cluster was down"


def test_killed_connections_lose_nothing_and_listening_resumes(deployment):
    """Fault: every connection of the instances is terminated at once (a failover, a pooler restart, an operator's
    pg_terminate_backend). Nothing already revoked may come back; each instance must open a new LISTEN connection
    (seen in pg_stat_activity); a sign-out made on A right after the kill, while connections are being
    re-established, must be refused by B within a second; live tokens keep working."""
    a, b = deployment.start(2)
    emails = {what: new_email(what) for what in ("early", "live", "during", "after")}
    for email in emails.values():
        a.register(email)
    early = a.login(emails["early"])["accessToken"]
    live = b.login(emails["live"])["accessToken"]
    during = a.login(emails["during"])["accessToken"]
    after = b.login(emails["after"])["accessToken"]
    a.logout(early)
    assert_refused_within([a, b], early, PROPAGATION_BOUND, "the early sign-out")

    with deployment.connect() as conn:
        listeners, _ = wait_until(lambda: (lambda pids: pids if len(pids) >= 2 else None)(
            listening_backends(conn, deployment.name)), 10, 0.1, "one LISTEN connection per instance before the kill")
        killed = {pid for pid, terminated in conn.execute(
            "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (deployment.name,)) if terminated}
        assert listeners <= killed, f"the listeners {listeners} were not all terminated ({killed})"

        # Sign out on A at once: A's pooled connections are dead, so this may take a retry (503, never a 500).
        def sign_out():
            response = a.post("/api/auth/logout", token=during)
            assert response.status_code in (204, 503), f"sign-out on A right after the kill: {describe(response)}"
            return response.status_code == 204
        wait_until(sign_out, 10, 0.1, "a sign-out on A right after the kill")
        acknowledged = time.monotonic()
        assert_refused_within([a, b], during, PROPAGATION_BOUND, "a sign-out made right after the kill", acknowledged)

        wait_until(lambda: len(listening_backends(conn, deployment.name) - killed) >= 2, 10, 0.1,
                   "each instance LISTENs again, on a new connection, after the kill")
    for instance in (a, b):
        for _ in range(5):
            response = instance.ping(early)
            assert response.status_code == 401 and problem_code(response) == "token_revoked", \
                f"the early sign-out on {instance} after the kill: {describe(response)}"
    assert_accepted([a, b], live, "a live token after the kill")
    assert a.ready().status_code == 200 and b.ready().status_code == 200

    b.logout(after)
    acknowledged = time.monotonic()
    assert_refused_within([a], after, PROPAGATION_BOUND, "a sign-out on B after LISTEN was re-established", acknowledged)


def test_two_instances_started_at_once_migrate_an_empty_database_once(deployment):
    """Fault: a rolling deploy starts two instances at the same moment on an empty database; both run the
    migrations. Without a lock both would create the same tables (one crashes) or apply a step twice. Both must
    come up, every step must be applied exactly once, and `tessera migrate` must find the schema up to date."""
    a, b = deployment.start(2)
    for instance in (a, b):
        wait_until(lambda: instance.ready().status_code == 200, 10, 0.1, f"/ready on {instance}")

    migrated = deployment.cli("migrate")
    assert migrated.returncode == 0, f"tessera migrate: exit {migrated.returncode}\n{migrated.stdout}{migrated.stderr}"
    match = re.search(r"schema is up to date at version (\d+)", migrated.stdout)
    assert match, f"tessera migrate said: {migrated.stdout!r}"
    latest = int(match.group(1))
    with deployment.connect() as conn:
        versions = [row[0] for row in conn.execute("SELECT version FROM tessera_migrations ORDER BY version")]
    assert versions == list(range(1, latest + 1)), f"tessera_migrations holds {versions}, latest is {latest}"
    applied = re.findall(r"version=(\d+) \[TesseraStore\] applied migration", a.log() + b.log())
    assert sorted(map(int, applied)) == list(range(1, latest + 1)), \
        f"each step must be applied by exactly one instance; the logs show {sorted(map(int, applied))}"

    email = new_email("both")
    a.register(email)
    token = b.login(email)["accessToken"]
    assert_accepted([a, b], token, "a token on a database both instances migrated")


def test_copy_from_sqlite_keeps_tokens_revocations_and_refresh_tokens(deployment, jwt_secret):
    """Migration path: an operator moves from SQLite to PostgreSQL with `tessera copy`. Signed-in users must stay
    signed in (their access and refresh tokens carry on), and what was revoked on SQLite must stay revoked; a copy
    into a database that already holds accounts must be refused, not merged."""
    with running_tessera(jwt_secret) as server:
        sqlite_url = server.database_url
        old = Instance("sqlite", server)
        kept_email, revoked_email = new_email("kept"), new_email("revoked")
        old.register(kept_email)
        old.register(revoked_email)
        kept = old.login(kept_email)
        revoked = old.login(revoked_email)
        assert_accepted([old], kept["accessToken"], "a live token on SQLite")
        cut = subprocess.run([BINARY, "revoke", "--user", revoked_email, "--reason", "before the copy"],
                             env=dict(server.env, DATABASE_URL=sqlite_url), capture_output=True, text=True, timeout=60)
        assert cut.returncode == 0, f"tessera revoke on SQLite: {cut.stdout}{cut.stderr}"
        assert_refused_within([old], revoked["accessToken"], PROPAGATION_BOUND, "the revoked user on SQLite")
        server.stop()

        copied = deployment.cli("copy", "--from", sqlite_url, "--to", deployment.url, timeout=120)
        assert copied.returncode == 0, f"tessera copy: exit {copied.returncode}\n{copied.stdout}{copied.stderr}"
        assert copied.stdout.strip(), "tessera copy says what it copied"

        new, = deployment.start(1)
        assert_accepted([new], kept["accessToken"], "a live access token from SQLite on PostgreSQL")
        response = new.ping(revoked["accessToken"])
        assert response.status_code == 401 and problem_code(response) == "token_revoked", \
            f"a token revoked on SQLite, on PostgreSQL: {describe(response)}"
        refreshed = new.post("/api/auth/refresh", {"refreshToken": kept["refreshToken"]})
        assert refreshed.status_code == 200, f"a refresh token from SQLite on PostgreSQL: {describe(refreshed)}"
        assert_accepted([new], refreshed.json()["accessToken"], "the refreshed access token")
        spent = new.post("/api/auth/refresh", {"refreshToken": revoked["refreshToken"]})
        assert spent.status_code == 401 and problem_code(spent) == "invalid_refresh_token", \
            f"the revoked user's refresh token from SQLite: {describe(spent)}"

        again = deployment.cli("copy", "--from", sqlite_url, "--to", deployment.url, timeout=120)
        assert again.returncode != 0, f"a second copy into a database with accounts must be refused:\n{again.stdout}"
        assert again.stderr.strip(), "the refusal says why"


def test_a_key_revoked_on_one_instance_is_refused_by_every_instance_within_a_second(jwt_secret, tmp_path):
    """EdDSA keys in the shared database: both instances sign with the same key; after a rotation (a 2-second
    publication period here), tokens of the old key keep working on both; `keys revoke` of the old key is enforced by both within a
    second, and both sign with a key that is not revoked."""
    if not PG_CTL:
        pytest.skip("TESSERA_TEST_PG_CTL is unset")
    ensure_cluster_running()
    deployment = Deployment(jwt_secret, tmp_path, {"JWT_ALGORITHM": "EdDSA", "TESSERA_KEY_ENCRYPTION_KEY": secrets.token_urlsafe(40),
                                                   "TESSERA_KEY_PUBLICATION": "2s"})
    try:
        a, b = deployment.start(2)
        a.register(email := new_email("keys"))
        token = a.login(email)["accessToken"]
        kid = jwt_claims_header(token)["kid"]
        assert_accepted([a, b], token, "a token of the first key")
        assert jwt_claims_header(b.login(email)["accessToken"])["kid"] == kid, "the instances sign with different keys"

        rotated = deployment.cli("keys", "rotate", "--json")
        assert rotated.returncode == 0, rotated.stderr
        new_kid = json.loads(rotated.stdout)["key"]["kid"]

        def rotated_everywhere():
            listing = deployment.cli("keys", "list", "--json")
            states = {key["kid"]: key["state"] for key in json.loads(listing.stdout)["keys"]}
            return states.get(new_kid) == "current" and states.get(kid) == "retired"
        wait_until(rotated_everywhere, 15, 0.25, "the rotation completes by the keys' times")
        assert_accepted([a, b], token, "a token of the retired key")

        started = time.monotonic()
        revoked = deployment.cli("keys", "revoke", kid, "--yes", "--reason", "leaked")
        assert revoked.returncode == 0, revoked.stderr
        assert_refused_within([a, b], token, PROPAGATION_BOUND + (time.monotonic() - started), "a token of the revoked key", since=started)
        for instance in (a, b):
            fresh = instance.login(email)["accessToken"]
            assert jwt_claims_header(fresh)["kid"] != kid
            assert_accepted([a, b], fresh, f"a fresh token from {instance}")
    finally:
        print(deployment.logs())
        deployment.close()


def jwt_claims_header(token):
    header = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))


def test_a_feed_cursor_from_one_instance_is_followed_on_another(deployment):
    """A guarded service behind a load balancer reaches a different Tessera instance on each long poll: a cursor
    handed out by A must be understood by B (it is a position in the shared database's log, not in A's memory), so
    that no revocation is missed and no snapshot is needed when a follower moves. Each instance also carries a
    sign-out made on the other, and the rows are the same on both."""
    a, b = deployment.start(2)
    added = deployment.cli("clients", "add", "pg-guard", "--feed", "--json")
    assert added.returncode == 0, added.stderr
    credentials = json.loads(added.stdout)
    auth = (credentials["clientId"], credentials["clientSecret"])

    def feed(instance, path, **params):
        return requests.get(instance.base_url + path, params=params, auth=auth, timeout=HTTP_TIMEOUT + 5)

    # The instances learn of a new client on their next read of the clients (an unknown id is looked up at once).
    wait_until(lambda: feed(a, "/api/revocations/snapshot").status_code == 200 and feed(b, "/api/revocations/snapshot").status_code == 200,
               15, 0.25, "both instances know the new feed client")
    cursor = feed(a, "/api/revocations/snapshot").json()["cursor"]

    alice = new_email("alice")
    a.register(alice)
    on_a = a.login(alice, "laptop")
    on_b = b.login(alice, "phone")

    a.logout(on_a["accessToken"])
    answer = feed(b, "/api/revocations/changes", cursor=cursor, wait="3s")
    assert answer.status_code == 200, f"B refused A's cursor: {describe(answer)}"
    rows = answer.json()["entries"]
    assert any(row["kind"] == "session" and row.get("sessionId") == on_a["sessionId"].lower() for row in rows), rows
    cursor = answer.json()["cursor"]

    b.logout(on_b["accessToken"])
    answer = feed(a, "/api/revocations/changes", cursor=cursor, wait="3s")
    assert answer.status_code == 200, f"A refused B's cursor: {describe(answer)}"
    rows = answer.json()["entries"]
    assert any(row["kind"] == "session" and row.get("sessionId") == on_b["sessionId"].lower() for row in rows), rows
    seq = next(row["seq"] for row in rows if row.get("sessionId") == on_b["sessionId"].lower())

    # Either instance goes on from the newest cursor (a row may come again: a follower applies it harmlessly).
    cursor = answer.json()["cursor"]
    for instance in (a, b):
        assert feed(instance, "/api/revocations/changes", cursor=cursor, wait="0").status_code == 200
    for instance in (a, b):
        held = feed(instance, "/api/revocations/snapshot").json()["entries"]
        assert any(row.get("sessionId") == on_b["sessionId"].lower() for row in held), f"{instance} snapshot lacks row {seq}"
