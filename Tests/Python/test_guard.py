"""The revocation feed and the example guarded service (Examples/guarded-service, linking TesseraGuard), end to end
with real processes: a `tessera serve` on SQLite signing with EdDSA (a 3-second publication period, so that a
rotation completes in the test), a feed client made by `tessera clients add --feed`, and `guarded-service` following
that server with a 2-second staleness bound.

What these tests stop:
  - a service that keeps accepting a token after the user signed out, an operator revoked the account, or the token
    was revoked by RFC 7009 (each must be refused by the guarded service within a second of Tessera's answer);
  - a guarded service that goes on accepting tokens when it can no longer hear Tessera (it must fail closed after
    its bound, with 503 and Retry-After), never accepts a revoked token during or after the outage, and comes back
    by itself when Tessera does, on the same database and address;
  - a guarded service that does not follow a key rotation, or still accepts tokens of a revoked (leaked) key;
  - a feed that only TesseraGuard can read: a follower written here from the contract alone, with `requests`,
    sees a sign-out within a second, and the feed refuses what it must (gone cursors, no or wrong credentials,
    clients without the feed permission).

    GUARDED_SERVICE_BINARY  the example's binary (default: `guarded-service` beside TESSERA_BINARY)
    GUARD_ROUNDS            revocations measured in the latency test (default 100)
    GUARD_LATENCY_REPORT    a path: the latency test writes its p50/p99 there as JSON
Logs (tessera's and the guarded service's) stay in pytest's tmp_path and are printed when a test fails.
"""
import base64
import datetime
import json
import os
import secrets
import socket
import subprocess
import threading
import time
import urllib.parse

import pytest
import requests

from conftest import BINARY, LoggedProcess, TesseraLaunch, describe, new_email, problem_code, require_binary, tessera_environment

GUARDED_SERVICE = os.environ.get("GUARDED_SERVICE_BINARY") or os.path.join(os.path.dirname(BINARY), "guarded-service")
ROUNDS = int(os.environ.get("GUARD_ROUNDS", "100"))
LATENCY_REPORT = os.environ.get("GUARD_LATENCY_REPORT")

# What `tessera serve` writes when JWT_ISSUER / JWT_AUDIENCE are unset (TokenSettings' defaults); conftest's
# tessera_environment removes both from the server's environment, so the guard is told these.
ISSUER = "tessera"
AUDIENCE = "tessera"
ALGORITHM = "EdDSA"
KEK = secrets.token_urlsafe(40)

REFUSAL_BOUND = 1.0      # a revocation acknowledged by Tessera is refused by the guarded service within this
STALENESS = 2.0          # TESSERA_STALENESS given to the guarded service
RECOVERY_BOUND = 8.0     # after Tessera answers /health again, the guarded service accepts live tokens within this
POLL_INTERVAL = 0.005
HTTP_TIMEOUT = 5
PASSWORD = "correct horse battery staple"


# ---------------------------------------------------------------------------------------------------------------
# Helpers


def free_port():
    """A TCP port free on 127.0.0.1 now (the kernel's pick; closed again at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def jwt_part(token, index):
    """The JSON of a JWT's header (0) or payload (1), not checked (the test only reads kid, sid)."""
    part = token.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def parse_time(text):
    """An RFC 3339 time of the feed ("2026-12-02T01:02:03Z", fractions allowed) as an aware datetime."""
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def require_guarded_service():
    if not os.access(GUARDED_SERVICE, os.X_OK):
        pytest.skip(f"no guarded-service binary at {GUARDED_SERVICE}: build the example (swift build --product "
                    f"guarded-service) or set GUARDED_SERVICE_BINARY")


class GuardedService(LoggedProcess):
    """The example guarded service as a subprocess on a free loopback port, logging to log_path."""

    def __init__(self, tessera_url, credentials, log_path):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = {name: value for name, value in os.environ.items() if not name.startswith(("TESSERA_", "JWT_"))}
        env.update(TESSERA_URL=tessera_url, TESSERA_CLIENT_ID=credentials["clientId"],
                   TESSERA_CLIENT_SECRET=credentials["clientSecret"], JWT_ISSUER=ISSUER, JWT_AUDIENCE=AUDIENCE,
                   JWT_ALGORITHM=ALGORITHM, HOST="127.0.0.1", PORT=str(self.port), TESSERA_STALENESS=f"{STALENESS:g}s")
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen([GUARDED_SERVICE], env=env, stdin=subprocess.DEVNULL, stdout=self._log,
                                        stderr=subprocess.STDOUT)
        self.session = requests.Session()

    def hello(self, token, session=None):
        return (session or self.session).get(f"{self.base_url}/hello", headers={"Authorization": f"Bearer {token}"},
                                             timeout=HTTP_TIMEOUT)

    def wait_until_healthy(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"guarded-service exited with {self.process.returncode}:\n{self.log()}")
            try:
                response = requests.get(f"{self.base_url}/health", timeout=2)
                if response.status_code == 200:
                    assert response.json().get("status") == "ok", describe(response)
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"guarded-service did not answer GET /health with 200 within {timeout} s:\n{self.log()}")



class GuardedDeployment:
    """A `tessera serve` (SQLite, EdDSA keys in the database, 3-second publication) with a feed client, the guarded
    service following it, and `tessera` commands beside them. close() stops both; the directory keeps the logs."""

    def __init__(self, jwt_secret, directory):
        require_binary()
        require_guarded_service()
        self.directory = str(directory)
        self.database_url = f"sqlite://{self.directory}/t.sqlite"
        self.env = tessera_environment(jwt_secret, extra_env={
            "JWT_ALGORITHM": ALGORITHM, "TESSERA_KEY_ENCRYPTION_KEY": KEK, "TESSERA_KEY_PUBLICATION": "3s"})
        self.launches = []
        self.guard = None
        try:
            self.tessera = self._launch(port=0).wait_until_healthy()
            # The guarded service knows one URL: a restarted server must come back on this port.
            self.port = urllib.parse.urlsplit(self.tessera.base_url).port
            self.base_url = self.tessera.base_url
            self.feed = self.add_client("guarded-service", "--feed")
            wait_until_the_feed_knows(self.base_url, self.feed)
            self.guard = GuardedService(self.base_url, self.feed, os.path.join(self.directory, "guarded-service.log"))
            self.guard.wait_until_healthy()
            pair = self.sign_in("startup")
            self.wait_until_accepted(pair, timeout=30, what="a fresh token, once the guarded service has started")
        except BaseException:
            print(self.logs())
            self.close()
            raise

    def _launch(self, port):
        launch = TesseraLaunch(self.database_url, self.env, os.path.join(self.directory, f"tessera-{len(self.launches) + 1}.log"), port=port)
        self.launches.append(launch)
        return launch

    # --- tessera

    def stop_tessera(self):
        self.tessera.stop()

    def restart_tessera(self, timeout=15):
        """Starts `tessera serve` again on the same database and port; retries while the port is still held."""
        deadline = time.monotonic() + timeout
        while True:
            launch = self._launch(self.port)
            try:
                self.tessera = launch.wait_until_healthy()
                return self.tessera
            except RuntimeError:
                launch.stop()
                if "address is in use" not in launch.log() or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def cli(self, *args, timeout=60):
        """Runs `tessera ARGS --database …` with the server's environment; returns its stdout."""
        result = subprocess.run([BINARY, *args, "--database", self.database_url], env=self.env, capture_output=True,
                                text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        assert result.returncode == 0, f"tessera {' '.join(args)}: exit {result.returncode}\n{result.stdout}{result.stderr}"
        return result.stdout

    def add_client(self, name, *permissions):
        credentials = json.loads(self.cli("clients", "add", name, *permissions, "--json"))
        assert credentials["clientId"] and credentials["clientSecret"], credentials
        return credentials

    def sign_in(self, label):
        """Registers a new account and signs it in; the token pair, with the email under ["user"]["email"]."""
        email = new_email(label)
        registered = requests.post(f"{self.base_url}/api/auth/register", json={"email": email, "password": PASSWORD},
                                   timeout=HTTP_TIMEOUT)
        assert registered.status_code == 201, f"register {email}: {describe(registered)}"
        return self.log_in(email)

    def log_in(self, email):
        response = requests.post(f"{self.base_url}/api/auth/login", json={"email": email, "password": PASSWORD,
                                                                          "deviceName": "pytest"}, timeout=HTTP_TIMEOUT)
        assert response.status_code == 200, f"login {email}: {describe(response)}"
        return response.json()

    def sign_out(self, pair):
        response = requests.post(f"{self.base_url}/api/auth/logout", headers={"Authorization": f"Bearer {pair['accessToken']}"},
                                 timeout=HTTP_TIMEOUT)
        assert response.status_code == 204, f"sign-out: {describe(response)}"

    def revoke_account_with_the_cli(self, pair):
        out = self.cli("revoke", "--user", pair["user"]["email"], "--reason", "guard test")
        assert "revoked every token of 1 user" in out, out

    def revoke_with_rfc7009(self, pair):
        # The holder of a token may revoke it without client credentials (RFC 7009 §2.1 leaves it to the server).
        response = requests.post(f"{self.base_url}/oauth/revoke", data={"token": pair["accessToken"], "token_type_hint": "access_token"},
                                 timeout=HTTP_TIMEOUT)
        assert response.status_code == 200, f"RFC 7009 revoke: {describe(response)}"

    # --- the guarded service

    def wait_until_accepted(self, pair, timeout=5, what="a live token"):
        deadline = time.monotonic() + timeout
        while True:
            response = self.guard.hello(pair["accessToken"])
            if response.status_code == 200:
                assert response.json().get("userId", "").lower() == pair["user"]["id"].lower(), describe(response)
                return
            assert time.monotonic() < deadline, f"{what}: the guarded service answered {describe(response)} for {timeout} s"
            time.sleep(0.05)

    def logs(self, since=None):
        """Every log of this deployment (from the offsets in `since`, as log_offsets() returned them)."""
        since = since or {}
        parts = []
        for path in self._log_paths():
            try:
                with open(path, encoding="utf-8", errors="replace") as f:
                    f.seek(since.get(path, 0))
                    text = f.read()
            except OSError:
                continue
            parts.append(f"----- {os.path.basename(path)} (last 6000 characters)\n{text[-6000:]}")
        return "\n".join(parts)

    def log_offsets(self):
        return {path: os.path.getsize(path) for path in self._log_paths() if os.path.exists(path)}

    def _log_paths(self):
        return [launch.log_path for launch in self.launches] + ([self.guard.log_path] if self.guard else [])

    def close(self):
        if self.guard:
            self.guard.stop()
        for launch in self.launches:
            launch.stop()


def wait_until_the_feed_knows(base_url, credentials, timeout=20):
    """A client added by the CLI reaches a running server within its 10-second refresh; until then it is 401."""
    deadline = time.monotonic() + timeout
    while True:
        response = requests.get(f"{base_url}/api/revocations/snapshot", auth=(credentials["clientId"], credentials["clientSecret"]),
                                timeout=HTTP_TIMEOUT)
        if response.status_code != 401:
            return response
        assert time.monotonic() < deadline, f"the server did not know the client {timeout} s after it was added: {describe(response)}"
        time.sleep(0.25)


def time_to_refusal(guard, token, acknowledged, give_up_after=5.0):
    """Polls /hello every 5 ms until the guarded service refuses the token; the seconds from `acknowledged` (a
    time.monotonic()) to the first 401. Fails on any answer but 200 or 401, and after give_up_after seconds."""
    while True:
        response = guard.hello(token)
        elapsed = time.monotonic() - acknowledged
        if response.status_code == 401:
            assert problem_code(response) == "token_revoked", f"the refusal, as Tessera's: {describe(response)}"
            assert 'error="invalid_token"' in response.headers.get("WWW-Authenticate", ""), response.headers
            return elapsed
        assert response.status_code == 200, f"expected 200 or 401 while the revocation travels, got {describe(response)}"
        assert elapsed < give_up_after, f"the guarded service still accepted the token {elapsed:.2f} s after the revocation"
        time.sleep(POLL_INTERVAL)


def assert_unavailable(response, what):
    assert response.status_code == 503, f"{what}: expected 503, got {describe(response)}"
    assert problem_code(response) == "revocation_index_stale", f"{what}: {describe(response)}"
    assert response.headers.get("Retry-After"), f"{what}: a 503 without Retry-After"


@pytest.fixture(scope="module")
def guarded_deployment(jwt_secret, tmp_path_factory):
    deployment = GuardedDeployment(jwt_secret, tmp_path_factory.mktemp("guard"))
    try:
        yield deployment
    finally:
        deployment.close()


@pytest.fixture
def guarded(guarded_deployment):
    """The module's deployment; what its processes logged during the test is printed at teardown (pytest shows it
    only when the test failed)."""
    offsets = guarded_deployment.log_offsets()
    yield guarded_deployment
    print(guarded_deployment.logs(since=offsets))


# ---------------------------------------------------------------------------------------------------------------
# Tests


def test_a_revocation_is_refused_by_the_guarded_service_within_a_second(guarded):
    """Attack: a token copied off a laptop is replayed against another service after its owner signed out, after an
    operator revoked the account from a shell, or after a client revoked it by RFC 7009. The guarded service checks
    tokens alone (no call to Tessera per request): it must refuse each within a second of Tessera's acknowledgment,
    in every one of GUARD_ROUNDS rounds, not on average."""
    methods = [
        ("sign-out", guarded.sign_out),
        ("tessera revoke --user", guarded.revoke_account_with_the_cli),
        ("RFC 7009 /oauth/revoke", guarded.revoke_with_rfc7009),
    ]
    latencies = {name: [] for name, _ in methods}
    for round_number in range(ROUNDS):
        name, revoke = methods[round_number % len(methods)]
        pair = guarded.sign_in(f"round{round_number}")
        response = guarded.guard.hello(pair["accessToken"])
        assert response.status_code == 200, f"round {round_number}: a fresh token before the {name}: {describe(response)}"
        revoke(pair)
        acknowledged = time.monotonic()
        latencies[name].append(time_to_refusal(guarded.guard, pair["accessToken"], acknowledged))

    every = [seconds for values in latencies.values() for seconds in values]
    report = {
        "rounds": len(every),
        "p50Ms": round(percentile(every, 0.5) * 1000, 1),
        "p99Ms": round(percentile(every, 0.99) * 1000, 1),
        "maxMs": round(max(every) * 1000, 1),
        "byMethod": {name: {"rounds": len(values), "p50Ms": round(percentile(values, 0.5) * 1000, 1),
                            "p99Ms": round(percentile(values, 0.99) * 1000, 1), "maxMs": round(max(values) * 1000, 1)}
                     for name, values in latencies.items() if values},
    }
    print(f"revocation → 401 from the guarded service, {report['rounds']} rounds: p50 {report['p50Ms']} ms, "
          f"p99 {report['p99Ms']} ms, max {report['maxMs']} ms; {json.dumps(report['byMethod'])}")
    if LATENCY_REPORT:
        with open(LATENCY_REPORT, "w") as f:
            json.dump(report, f, indent=2)
    late = {name: [f"{seconds:.3f}" for seconds in values if seconds > REFUSAL_BOUND] for name, values in latencies.items()}
    assert not any(late.values()), f"rounds refused later than {REFUSAL_BOUND} s (seconds): {late}"


def test_the_guarded_service_fails_closed_when_tessera_stops_and_recovers_alone(jwt_secret, tmp_path):
    """Fault: Tessera goes away (a deploy, a crash) while the guarded service keeps serving. Within its staleness
    bound it may go on deciding from what it knows; past it, it must answer 503 with Retry-After for every token,
    since it can no longer know what was revoked. It must never accept a token it knows is revoked, nor one revoked
    while it could not hear (by `tessera revoke`, which writes the database while the server is down), and it must
    come back by itself when Tessera is started again on the same database and port."""
    deployment = GuardedDeployment(jwt_secret, tmp_path)
    try:
        guard = deployment.guard
        live, signed_out, revoked_later = (deployment.sign_in(label) for label in ("live", "signed-out", "revoked-later"))
        for pair in (live, signed_out, revoked_later):
            deployment.wait_until_accepted(pair)
        deployment.sign_out(signed_out)
        assert time_to_refusal(guard, signed_out["accessToken"], time.monotonic()) <= REFUSAL_BOUND

        stopping = time.monotonic()
        deployment.stop_tessera()
        stopped = time.monotonic()

        # The outage, within the bound: the live token is accepted until the guard's last news is older than the
        # bound, then refused as unavailable; the signed-out token is never accepted.
        unavailable_from = None
        while unavailable_from is None:
            response = guard.hello(live["accessToken"])
            now = time.monotonic()
            if response.status_code == 503:
                assert_unavailable(response, "the live token once the bound has passed")
                unavailable_from = now
            else:
                assert response.status_code == 200, f"the live token during the outage: {describe(response)}"
                assert now - stopped <= STALENESS + 0.5, \
                    f"the live token was still accepted {now - stopped:.2f} s after Tessera stopped (bound {STALENESS} s)"
            refused = guard.hello(signed_out["accessToken"])
            assert refused.status_code in (401, 503), f"the signed-out token during the outage: {describe(refused)}"
            time.sleep(0.02)
        assert unavailable_from - stopping >= STALENESS - 1.0, \
            f"the guarded service failed closed {unavailable_from - stopping:.2f} s into the outage, before its bound " \
            f"({STALENESS} s) had passed: it must keep deciding from what it knows until then"

        # Past the bound: every token is 503 with Retry-After, never 200. An operator revokes an account now, with
        # the CLI, straight into the database.
        deployment.revoke_account_with_the_cli(revoked_later)
        for _ in range(10):
            for what, pair in (("live", live), ("revoked-later", revoked_later)):
                assert_unavailable(guard.hello(pair["accessToken"]), f"the {what} token during the outage")
            refused = guard.hello(signed_out["accessToken"])
            assert refused.status_code in (401, 503), f"the signed-out token during the outage: {describe(refused)}"
            time.sleep(0.05)

        # Tessera comes back on the same database and port; the guarded service must find it again by itself.
        deployment.restart_tessera()
        restarted = time.monotonic()
        while True:
            for what, pair in (("signed-out", signed_out), ("revoked-later", revoked_later)):
                response = guard.hello(pair["accessToken"])
                assert response.status_code in (401, 503), f"the {what} token while the guard recovers: {describe(response)}"
            response = guard.hello(live["accessToken"])
            if response.status_code == 200:
                break
            assert_unavailable(response, "the live token while the guard recovers")
            assert time.monotonic() - restarted < RECOVERY_BOUND, \
                f"the guarded service still answers 503 {RECOVERY_BOUND} s after Tessera came back"
            time.sleep(0.05)

        # Recovered: what was revoked before and during the outage stays refused; the live token works.
        for _ in range(20):
            for what, pair in (("signed-out", signed_out), ("revoked-later", revoked_later)):
                response = guard.hello(pair["accessToken"])
                assert response.status_code == 401 and problem_code(response) == "token_revoked", \
                    f"the {what} token after recovery: {describe(response)}"
            response = guard.hello(live["accessToken"])
            assert response.status_code == 200, f"the live token after recovery: {describe(response)}"
            time.sleep(0.05)
        # And a revocation after recovery travels as before.
        deployment.sign_out(live)
        assert time_to_refusal(guard, live["accessToken"], time.monotonic()) <= REFUSAL_BOUND
    finally:
        print(deployment.logs())
        deployment.close()


def test_key_rotation_and_key_revoke_are_followed(guarded):
    """Fault: the guarded service holds the JWKS it fetched at start. After `tessera keys rotate`, tokens of the new
    key must be accepted (it fetches the JWKS again for an unknown kid); after `tessera keys revoke` of a leaked key,
    every token that key signed must be refused within a second, and the new key's tokens must go on working."""
    before = guarded.sign_in("keys-before")
    guarded.wait_until_accepted(before)
    old_kid = jwt_part(before["accessToken"], 0)["kid"]

    published = json.loads(guarded.cli("keys", "rotate", "--json"))["key"]
    new_kid = published["kid"]
    assert new_kid != old_kid
    deadline = time.monotonic() + 15
    while True:  # current by the keys' times alone, 3 s after publication
        states = {key["kid"]: key["state"] for key in json.loads(guarded.cli("keys", "list", "--json"))["keys"]}
        if states.get(new_kid) == "current":
            break
        assert time.monotonic() < deadline, states
        time.sleep(0.5)

    deadline = time.monotonic() + 30
    while True:  # the server reads its keys again every 10 s; until then a sign-in may still use the old key
        after = guarded.log_in(before["user"]["email"])
        if jwt_part(after["accessToken"], 0)["kid"] == new_kid:
            break
        assert time.monotonic() < deadline, f"no token signed by {new_kid} 30 s after it became current"
        time.sleep(0.5)
    guarded.wait_until_accepted(after, timeout=3, what=f"a token of the new key {new_kid}")
    response = guarded.guard.hello(before["accessToken"])
    assert response.status_code == 200, f"the rotation signed someone out of the guarded service: {describe(response)}"

    guarded.cli("keys", "revoke", old_kid, "--yes", "--reason", "leaked")
    acknowledged = time.monotonic()
    seconds = time_to_refusal(guarded.guard, before["accessToken"], acknowledged)
    assert seconds <= REFUSAL_BOUND, f"a token of the revoked key {old_kid} was refused only after {seconds:.2f} s"
    response = guarded.guard.hello(after["accessToken"])
    assert response.status_code == 200, f"a token of the new key after the old one was revoked: {describe(response)}"


class HandWrittenFollower:
    """What a service in another language would write from the contract alone: a snapshot, then long polls of the
    changes, applying every row as the contract says. Nothing of TesseraGuard. follow() runs in a thread; what goes
    wrong there is kept in `errors` for the test to assert on."""

    def __init__(self, base_url, credentials, wait="1s"):
        self.base_url = base_url
        self.wait = wait
        self.session = requests.Session()
        self.session.auth = (credentials["clientId"], credentials["clientSecret"])
        self.cursor = None
        self.tokens = {}      # jti → until
        self.sessions = {}    # sid → until
        self.subjects = {}    # userId → (seq, acceptedFromVersion)
        self.global_cut = None  # (seq, epoch)
        self.keys = set()
        self.first_seen = {}  # (kind, id) → time.monotonic() of the answer that brought it first
        self.answers = 0
        self.errors = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def snapshot(self):
        response = self.session.get(f"{self.base_url}/api/revocations/snapshot", timeout=HTTP_TIMEOUT)
        received = time.monotonic()
        assert response.status_code == 200, f"snapshot: {describe(response)}"
        assert "no-store" in response.headers.get("Cache-Control", ""), response.headers
        body = response.json()
        assert isinstance(body["cursor"], str) and body["cursor"], body
        assert isinstance(body["indexAgeMs"], int) and body["indexAgeMs"] >= 0, body
        assert isinstance(body["entries"], list), body
        with self.lock:
            # Replace the state; token and session cuts may be kept (random ids that never come back).
            self.subjects, self.global_cut, self.keys = {}, None, set()
            for row in body["entries"]:
                self.apply(row, received, in_snapshot=True)
            self.cursor = body["cursor"]
        return body

    def follow(self):
        while not self.stopping.is_set():
            try:
                response = self.session.get(f"{self.base_url}/api/revocations/changes",
                                            params={"cursor": self.cursor, "wait": self.wait}, timeout=HTTP_TIMEOUT + 30)
            except requests.RequestException as error:
                self.errors.append(f"changes: {error!r}")
                time.sleep(0.1)
                continue
            received = time.monotonic()
            if response.status_code == 410 and problem_code(response) == "cursor_gone":
                try:
                    self.snapshot()
                except (AssertionError, requests.RequestException, ValueError, KeyError) as error:
                    self.errors.append(f"snapshot after 410: {error!r}")
                    time.sleep(0.1)
                continue
            if response.status_code != 200:
                self.errors.append(f"changes: {describe(response)}")
                time.sleep(0.1)
                continue
            try:
                body = response.json()
                with self.lock:
                    self.answers += 1
                    for row in body["entries"]:
                        self.apply(row, received, in_snapshot=False)
                    self.cursor = body["cursor"]
            except (ValueError, KeyError, TypeError, AttributeError) as error:
                self.errors.append(f"a change answer not as the contract says ({error!r}): {response.text[:300]!r}")
                self.stopping.set()

    def apply(self, row, received, in_snapshot):
        kind = row.get("kind")
        if not in_snapshot and not (isinstance(row.get("seq"), int) and isinstance(row.get("revokedAt"), str)):
            self.errors.append(f"a change row without seq or revokedAt: {row}")
        if kind == "token":
            key, cuts = row["jti"].lower(), self.tokens
        elif kind == "session":
            key, cuts = row["sessionId"].lower(), self.sessions
        elif kind in ("subject", "global") and not isinstance(row.get("seq"), int):
            self.errors.append(f"a {kind} row without seq (the contract gives it one everywhere): {row}")
            return
        elif kind == "subject":
            user, seq = row["userId"].lower(), row["seq"]
            if user not in self.subjects or self.subjects[user][0] < seq:  # the highest seq wins, even if its cut is lower
                self.subjects[user] = (seq, row["acceptedFromVersion"])
            self.first_seen.setdefault(("subject", user), received)
            return
        elif kind == "global":
            if self.global_cut is None or self.global_cut[0] < row["seq"]:
                self.global_cut = (row["seq"], row["epoch"])
            return
        elif kind == "key":
            self.keys.add(row["kid"])
            self.first_seen.setdefault(("key", row["kid"]), received)
            return
        else:
            self.errors.append(f"a row of an unknown kind (the follower must stop trusting its state): {row}")
            return
        until = parse_time(row["until"])
        if key not in cuts or cuts[key] < until:
            cuts[key] = until
        self.first_seen.setdefault((kind, key), received)

    def seen(self, kind, key):
        with self.lock:
            return self.first_seen.get((kind, key.lower()))


def test_the_feed_read_by_a_hand_written_follower(guarded):
    """The feed is a contract, not TesseraGuard's private protocol: a follower written here from the contract alone
    must see a sign-out within a second, and the feed must refuse what it must: a cursor it does not know (410
    cursor_gone, so that a follower takes a new snapshot rather than silently missing rows), no or wrong
    credentials (401), and a client registered without the feed permission (403)."""
    feed = guarded.add_client("hand-written-follower", "--feed")
    wait_until_the_feed_knows(guarded.base_url, feed)
    follower = HandWrittenFollower(guarded.base_url, feed)
    follower.snapshot()
    thread = threading.Thread(target=follower.follow, daemon=True)
    thread.start()
    try:
        pair = guarded.sign_in("follower")
        sid = pair["sessionId"].lower()
        assert jwt_part(pair["accessToken"], 1)["sid"].lower() == sid
        time.sleep(0.3)  # the follower is in a long poll
        guarded.sign_out(pair)
        acknowledged = time.monotonic()
        while (seen := follower.seen("session", sid)) is None:
            assert time.monotonic() - acknowledged < 5, f"the follower never saw the sign-out; errors: {follower.errors}"
            time.sleep(0.01)
        assert seen - acknowledged <= REFUSAL_BOUND, f"the follower saw the sign-out {seen - acknowledged:.2f} s after it was acknowledged"
    finally:
        follower.stopping.set()
        thread.join(timeout=10)
    assert not follower.errors, follower.errors
    assert follower.answers >= 1

    # A new snapshot holds the session cut too (a follower starting now must refuse it).
    late = HandWrittenFollower(guarded.base_url, feed)
    late.snapshot()
    assert sid in late.sessions, f"the snapshot lacks the signed-out session {sid}"

    # A heartbeat: nothing new within `wait` is an answer with no rows after about that long.
    started = time.monotonic()
    response = follower.session.get(f"{guarded.base_url}/api/revocations/changes",
                                    params={"cursor": late.cursor, "wait": "500ms"}, timeout=HTTP_TIMEOUT)
    assert response.status_code == 200, describe(response)
    if not response.json()["entries"]:
        assert time.monotonic() - started >= 0.4, "an empty answer came before `wait` had passed"

    changes = f"{guarded.base_url}/api/revocations/changes"
    auth = (feed["clientId"], feed["clientSecret"])
    response = requests.get(changes, params={"cursor": "not-a-cursor-" + secrets.token_hex(8), "wait": "0"}, auth=auth, timeout=HTTP_TIMEOUT)
    assert response.status_code == 410 and problem_code(response) == "cursor_gone", describe(response)
    assert response.headers.get("content-type", "").startswith("application/problem+json"), describe(response)
    response = requests.get(changes, auth=auth, timeout=HTTP_TIMEOUT)
    assert response.status_code == 400 and problem_code(response) == "invalid_cursor", describe(response)
    response = requests.get(changes, params={"cursor": late.cursor, "wait": "31s"}, auth=auth, timeout=HTTP_TIMEOUT)
    assert response.status_code == 400 and problem_code(response) == "invalid_wait", describe(response)

    for path in ("/api/revocations/snapshot", f"/api/revocations/changes?cursor={urllib.parse.quote(late.cursor)}"):
        response = requests.get(guarded.base_url + path, timeout=HTTP_TIMEOUT)
        assert response.status_code == 401 and problem_code(response) == "invalid_client", f"{path} without credentials: {describe(response)}"
        assert response.headers.get("WWW-Authenticate", "").startswith("Basic"), response.headers
        response = requests.get(guarded.base_url + path, auth=(feed["clientId"], "tcs_" + secrets.token_urlsafe(32)), timeout=HTTP_TIMEOUT)
        assert response.status_code == 401 and problem_code(response) == "invalid_client", f"{path} with a wrong secret: {describe(response)}"

    no_feed = guarded.add_client("introspection-only", "--introspect")
    response = wait_until_the_feed_knows(guarded.base_url, no_feed)
    assert response.status_code == 403 and problem_code(response) == "forbidden", f"a client without --feed: {describe(response)}"
