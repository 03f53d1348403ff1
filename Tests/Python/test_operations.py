"""What an operator reads from Tessera, against the real binary, with tools no one here wrote:

  - `/metrics` parsed by the `prometheus_client` package's text-format parser while sign-ins, token checks and
    revocations flow: every family docs/OPERATIONS.md lists, of the type it says, each counter moved by exactly what
    the test did, and the three alert rules of docs/OPERATIONS.md evaluated against the samples;
  - who may read `/metrics`: the bearer of TESSERA_METRICS_TOKEN on the main port, nobody there without one, and the
    metrics port on loopback;
  - `LOG_FORMAT=json`: every line an object, one access line per request with its request id, route template,
    numeric status and duration and the caller's user id; and no password, token or secret in the whole log.
"""
import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import string
import subprocess
import tempfile
import time

import jwt
import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from conftest import BINARY, LoggedProcess, describe, new_email, problem_code, require_binary, tessera_environment

PASSWORD = "correct horse battery"
OPERATIONS_MD = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "OPERATIONS.md")
UUID_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# Every family `tessera serve` exports, by the name prometheus_client gives it (a counter's without `_total`).
FAMILIES = {
    "tessera_http_requests": "counter",
    "tessera_http_request_errors": "counter",
    "tessera_http_request_duration_seconds": "histogram",
    "tessera_http_active_requests": "gauge",
    "tessera_token_checks": "counter",
    "tessera_sign_ins": "counter",
    "tessera_revocations": "counter",
    "tessera_revocation_index_age_seconds": "gauge",
    "tessera_revocation_index_entries": "gauge",
    "tessera_revocation_log_applied_seq": "gauge",
    "tessera_revocation_global_epoch": "gauge",
    "tessera_revoked_signing_keys": "gauge",
    "tessera_revocation_log_reads": "counter",
    "tessera_revocation_index_reloads": "counter",
    "tessera_revocation_follower_lag_seconds": "histogram",
    "tessera_commit_batch_size": "histogram",
    "tessera_password_hash_queue_wait_seconds": "histogram",
}
TOKEN_CHECK_OUTCOMES = {
    "accepted", "expired", "bad_signature", "unknown_key", "wrong_issuer", "wrong_audience", "algorithm_not_allowed",
    "not_yet_valid", "wrong_type", "malformed", "stale", "revoked_token", "revoked_session", "revoked_subject",
    "revoked_global", "revoked_key",
}


# --- a server of our own: its stderr apart from its stdout, and the metrics port's address ---------------------------

def operations_environment(jwt_secret, database_url, extra_env):
    """conftest's clean environment without any metrics or log setting of the caller's shell, then `extra_env`."""
    env = tessera_environment(jwt_secret, database_url)
    for name in ("TESSERA_METRICS_TOKEN", "TESSERA_METRICS_PORT", "TESSERA_METRICS_HOST", "LOG_FORMAT", "LOG_LEVEL"):
        env.pop(name, None)
    env.update(extra_env or {})
    return env


class OperationsLaunch(LoggedProcess):
    """`tessera serve --port 0` (and `--metrics-port` when asked) with stderr in `log_path` and stdout apart."""

    def __init__(self, database_url, env, directory, metrics_port=None):
        require_binary()
        self.log_path = os.path.join(directory, "stderr.log")
        self.stdout_path = os.path.join(directory, "stdout.log")
        self._log = open(self.log_path, "wb")
        self._stdout = open(self.stdout_path, "wb")
        arguments = [BINARY, "serve", "--host", "127.0.0.1", "--port", "0", "--database", database_url]
        if metrics_port is not None:
            arguments += ["--metrics-port", str(metrics_port)]
        self.database_url = database_url
        self.env = env
        self.process = subprocess.Popen(arguments, env=env, stdin=subprocess.DEVNULL, stdout=self._stdout, stderr=self._log)

    def stdout(self):
        with open(self.stdout_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self):
        super().stop()
        if not self._stdout.closed:
            self._stdout.close()

    def address(self, message):
        """The port of the line `message` ("tessera ready", "metrics ready"), in either log format; None before it."""
        for line in self.log().splitlines():
            if message in line:
                match = re.search(r'address"?[=:]"?127\.0\.0\.1:(\d+)', line)
                if match:
                    return int(match.group(1))
        return None

    def wait_until_ready(self, metrics=False, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tessera serve exited with {self.process.returncode}:\n{self.log()}")
            port = self.address("tessera ready")
            metrics_port = self.address("metrics ready") if metrics else None
            if port and (metrics_port or not metrics):
                self.base_url = f"http://127.0.0.1:{port}"
                self.metrics_url = f"http://127.0.0.1:{metrics_port}" if metrics_port else None
                try:
                    if requests.get(f"{self.base_url}/health", timeout=2).status_code == 200:
                        return self
                except requests.RequestException:
                    pass
            time.sleep(0.05)
        raise RuntimeError(f"tessera serve was not ready within {timeout} s:\n{self.log()}")


@contextlib.contextmanager
def tessera(jwt_secret, extra_env=None, metrics_port=None):
    directory = tempfile.mkdtemp(prefix="tessera-ops-")
    database_url = f"sqlite://{directory}/t.sqlite"
    launch = OperationsLaunch(database_url, operations_environment(jwt_secret, database_url, extra_env), directory, metrics_port)
    try:
        yield launch.wait_until_ready(metrics=metrics_port is not None)
    finally:
        launch.stop()
        shutil.rmtree(directory, ignore_errors=True)


def new_metrics_token():
    return "mt_" + secrets.token_urlsafe(24)


def cli(server, *args, stdin=None):
    result = subprocess.run([BINARY, *args, "--database", server.database_url], env=server.env, input=stdin, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def register_and_sign_in(server, label, password=PASSWORD):
    email = new_email(label)
    registered = requests.post(f"{server.base_url}/api/auth/register", json={"email": email, "password": password}, timeout=10)
    assert registered.status_code == 201, describe(registered)
    return email, registered.json()["user"]["id"], sign_in(server, email, password)


def sign_in(server, email, password=PASSWORD, expect=200):
    response = requests.post(f"{server.base_url}/api/auth/login", json={"email": email, "password": password}, timeout=10)
    assert response.status_code == expect, describe(response)
    return response.json() if expect == 200 else response


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def ping(server, token, expect):
    response = requests.get(f"{server.base_url}/api/v1/ping-auth", headers=bearer(token), timeout=10)
    assert response.status_code == expect, describe(response)
    return response


# --- the scrape, as prometheus_client reads it -------------------------------------------------------------------------

class Scrape:
    """One `/metrics` answer parsed by prometheus_client: families by name, samples by sample name."""

    def __init__(self, text):
        self.at = time.monotonic()
        self.families = {family.name: family for family in text_string_to_metric_families(text)}
        self.samples = {}
        for family in self.families.values():
            for sample in family.samples:
                self.samples.setdefault(sample.name, []).append(sample)

    def value(self, name, **labels):
        """The sum of the samples named `name` whose labels include `labels` (0 when there is none)."""
        return sum(s.value for s in self.samples.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items()))

    def label_values(self, name, label):
        return {s.labels[label] for s in self.samples.get(name, []) if label in s.labels}


def scrape(url, token=None):
    response = requests.get(f"{url}/metrics", headers=bearer(token) if token else {}, timeout=10)
    assert response.status_code == 200, describe(response)
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4"), describe(response)
    assert response.headers.get("cache-control") == "no-store"
    return Scrape(response.text)


def scrape_when(url, token, condition, timeout=5):
    """Scrapes until `condition(scrape)` holds (Hummingbird counts a request once its answer is written, so a scrape
    right after an answer may not count it yet); returns the last scrape either way, for exact assertions."""
    deadline = time.monotonic() + timeout
    while True:
        current = scrape(url, token)
        if condition(current) or time.monotonic() > deadline:
            return current
        time.sleep(0.05)


# --- the alert rules of docs/OPERATIONS.md ---------------------------------------------------------------------------

def documented_alert_rules():
    """The Prometheus rules file docs/OPERATIONS.md gives: its alerts by name."""
    with open(OPERATIONS_MD, encoding="utf-8") as f:
        text = f.read()
    blocks = [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", text, re.S)]
    rules = [rule for block in blocks if isinstance(block, dict) and "groups" in block
             for group in block["groups"] for rule in group["rules"]]
    return {rule["alert"]: rule for rule in rules}


def threshold(rule):
    match = re.search(r">\s*([0-9.]+)\s*$", rule["expr"].strip())
    assert match, f"the rule {rule['alert']} does not end in '> number': {rule['expr']}"
    return float(match.group(1))


def rate_over_5m(before, after, name, **labels):
    """PromQL's rate(name{labels}[5m]) when every increase happened within the last five minutes: increase / 300."""
    return (after.value(name, **labels) - before.value(name, **labels)) / 300


def five_xx_ratio(before, after):
    total = after.value("tessera_http_requests_total") - before.value("tessera_http_requests_total")
    assert total > 0, "no request was counted between the scrapes"
    errors = sum(after.value("tessera_http_requests_total", status=status) - before.value("tessera_http_requests_total", status=status)
                 for status in after.label_values("tessera_http_requests_total", "status") if status.startswith("5"))
    return errors / total


def forged(token, secret, **claims):
    """`token` with `claims` changed, signed again with `secret` under the same header."""
    payload = jwt.decode(token, options={"verify_signature": False})
    payload.update(claims)
    return jwt.encode(payload, secret, algorithm="HS256", headers=jwt.get_unverified_header(token))


# --- (a) the metrics while traffic and revocations flow ---------------------------------------------------------------

def test_metrics_count_exactly_what_happened_and_the_documented_alerts_evaluate(jwt_secret):
    metrics_token = new_metrics_token()
    with tessera(jwt_secret, {"TESSERA_METRICS_TOKEN": metrics_token}) as server:
        admin_email = new_email("ops-admin")
        cli(server, "users", "add", admin_email, "--admin", "--password-stdin", stdin=PASSWORD + "\n")
        before = scrape(server.base_url, metrics_token)
        assert set(FAMILIES) <= set(before.families), f"missing families: {set(FAMILIES) - set(before.families)}"
        for name, kind in FAMILIES.items():
            assert before.families[name].type == kind, f"{name} is a {before.families[name].type}, not a {kind}"
        # Every outcome is exported from the start, at 0, so that rate() sees the first one.
        assert before.label_values("tessera_token_checks_total", "outcome") == TOKEN_CHECK_OUTCOMES
        assert before.label_values("tessera_sign_ins_total", "outcome") == {"ok", "bad_password", "throttled", "inactive", "busy"}
        assert before.label_values("tessera_revocations_total", "kind") == {"token", "session", "subject", "global", "key"}

        admin = sign_in(server, admin_email)
        # A: signs in, then once with a wrong password; its token is accepted.
        a_email, _, a = register_and_sign_in(server, "ops-a")
        sign_in(server, a_email, "wrong horse battery", expect=401)
        ping(server, a["accessToken"], 200)
        # B signs out, then presents the signed-out token.
        _, _, b = register_and_sign_in(server, "ops-b")
        assert requests.post(f"{server.base_url}/api/auth/logout", headers=bearer(b["accessToken"]), timeout=10).status_code == 204
        ping(server, b["accessToken"], 401)
        # Not a token; a token signed with another key; one of ours, expired.
        ping(server, "garbage", 401)
        ping(server, forged(a["accessToken"], "another secret of at least 32 bytes!!"), 401)
        now = int(time.time())
        ping(server, forged(a["accessToken"], jwt_secret, iat=now - 7200, exp=now - 3600), 401)
        # C is revoked by an admin; E is deactivated, and its next sign-in refused.
        _, c_id, c = register_and_sign_in(server, "ops-c")
        revoked = requests.post(f"{server.base_url}/api/admin/revoke", json={"userIds": [c_id], "reason": "ops test"},
                                headers=bearer(admin["accessToken"]), timeout=10)
        assert revoked.status_code == 200, describe(revoked)
        ping(server, c["accessToken"], 401)
        e_email, e_id, _ = register_and_sign_in(server, "ops-e")
        deactivated = requests.post(f"{server.base_url}/api/admin/users/{e_id}/deactivate", headers=bearer(admin["accessToken"]), timeout=10)
        assert deactivated.status_code == 200, describe(deactivated)
        assert problem_code(sign_in(server, e_email, expect=403)) == "account_inactive"
        # A guesser: ten wrong passwords on one account, then six more refused by the throttle.
        victim_email, _, _ = register_and_sign_in(server, "ops-victim")
        for _ in range(10):
            sign_in(server, victim_email, "not the password", expect=401)
        for _ in range(6):
            assert problem_code(sign_in(server, victim_email, "not the password", expect=429)) == "too_many_attempts"
        # D's token falls to a revoke-all (which cuts the admin's too).
        _, _, d = register_and_sign_in(server, "ops-d")
        revoke_all = requests.post(f"{server.base_url}/api/admin/revoke-all", json={"reason": "ops test"},
                                   headers=bearer(admin["accessToken"]), timeout=10)
        assert revoke_all.status_code == 200, describe(revoke_all)
        ping(server, d["accessToken"], 401)

        expected_pings = {"200": 1, "401": 6}
        after = scrape_when(server.base_url, metrics_token, lambda s: all(
            s.value("tessera_http_requests_total", route="/api/v1/ping-auth", status=status)
            - before.value("tessera_http_requests_total", route="/api/v1/ping-auth", status=status) >= count
            for status, count in expected_pings.items()))

        def moved(name, **labels):
            return after.value(name, **labels) - before.value(name, **labels)

        # Sign-ins: admin, A, B, C, E, victim, D; A's and the victim's wrong passwords; E refused; the throttle.
        assert {o: moved("tessera_sign_ins_total", outcome=o) for o in ("ok", "bad_password", "inactive", "throttled", "busy")} \
            == {"ok": 7, "bad_password": 11, "inactive": 1, "throttled": 6, "busy": 0}
        # Accepted: A's ping, B's sign-out, and the admin's revoke, deactivate and revoke-all.
        checks = {o: moved("tessera_token_checks_total", outcome=o) for o in TOKEN_CHECK_OUTCOMES}
        assert checks == dict({o: 0 for o in TOKEN_CHECK_OUTCOMES}, accepted=5, revoked_session=1, malformed=1, bad_signature=1,
                              expired=1, revoked_subject=1, revoked_global=1), checks
        # Written by this instance: B's sign-out; C's revoke and E's deactivation; the revoke-all.
        kinds = {k: moved("tessera_revocations_total", kind=k) for k in ("token", "session", "subject", "global", "key")}
        assert kinds == {"token": 0, "session": 1, "subject": 2, "global": 1, "key": 0}, kinds
        # By route template, method and status.
        for status, count in expected_pings.items():
            assert moved("tessera_http_requests_total", route="/api/v1/ping-auth", method="GET", status=status) == count
        assert {s: moved("tessera_http_requests_total", route="/api/auth/login", method="POST", status=s) for s in ("200", "401", "403", "429")} \
            == {"200": 7, "401": 11, "403": 1, "429": 6}
        assert moved("tessera_http_requests_total", route="/api/admin/users/{id}/deactivate", method="POST", status="200") == 1
        assert not any("/api/admin/users/" + e_id in route for route in after.label_values("tessera_http_requests_total", "route"))
        # The latency histogram of ping-auth: one 200 observed, buckets cumulative up to +Inf.
        buckets = [s for s in after.samples["tessera_http_request_duration_seconds_bucket"]
                   if s.labels["route"] == "/api/v1/ping-auth" and s.labels["status"] == "200"]
        bounds = [float(s.labels["le"]) for s in buckets]
        counts = [s.value for s in buckets]
        assert bounds == sorted(bounds) and bounds[-1] == float("inf") and counts == sorted(counts)
        assert counts[-1] == after.value("tessera_http_request_duration_seconds_count", route="/api/v1/ping-auth", status="200") == 1
        assert 0 < after.value("tessera_http_request_duration_seconds_sum", route="/api/v1/ping-auth", status="200") < 10
        # The index: the cuts it holds, the epoch the revoke-all set, and its age.
        assert after.value("tessera_revocation_global_epoch") == revoke_all.json()["epoch"]
        assert after.value("tessera_revocation_index_entries", table="sessions") >= 1
        assert after.value("tessera_revocation_index_entries", table="subjects") >= 2
        assert after.value("tessera_revocation_log_applied_seq") >= 4
        assert 0 <= after.value("tessera_revocation_index_age_seconds") < 2
        assert moved("tessera_revocation_log_reads_total", outcome="ok") > 0
        assert after.value("tessera_revocation_log_reads_total", outcome="failed") == 0
        assert after.value("tessera_revocation_index_reloads_total") == 0
        assert moved("tessera_revocation_follower_lag_seconds_count") >= 1
        # One hash per registration and one check per sign-in that reached the password (ok, bad_password,
        # inactive), each through the queue; a throttled attempt never reaches the hasher.
        assert moved("tessera_password_hash_queue_wait_seconds_count") == 6 + 7 + 11 + 1
        assert moved("tessera_commit_batch_size_count", writes="transactions") >= 4

        # The documented alert rules, evaluated as Prometheus would over these two scrapes.
        rules = documented_alert_rules()
        assert len(rules) == 3, sorted(rules)
        for rule in rules.values():
            names = set(re.findall(r"\btessera_[a-z_]+", rule["expr"]))
            assert names and names <= set(after.samples), f"{rule['alert']} names a series /metrics lacks: {names - set(after.samples)}"
        index_rule = next(r for r in rules.values() if "tessera_revocation_index_age_seconds" in r["expr"])
        errors_rule = next(r for r in rules.values() if "tessera_http_requests_total" in r["expr"])
        throttle_rule = next(r for r in rules.values() if 'outcome="throttled"' in r["expr"])
        assert 'status=~"5.."' in errors_rule["expr"] and "[5m]" in errors_rule["expr"] and "[5m]" in throttle_rule["expr"]
        # Index age: far below the threshold, itself below the 5 s staleness bound.
        assert max(s.value for s in after.samples["tessera_revocation_index_age_seconds"]) < threshold(index_rule) < 5
        # 5xx: none, whatever was refused.
        assert five_xx_ratio(before, after) == 0 < threshold(errors_rule)
        # Throttled sign-ins: the guesser's six refusals in the window make it fire (a rate per second, times 60).
        assert "* 60" in throttle_rule["expr"]
        assert rate_over_5m(before, after, "tessera_sign_ins_total", outcome="throttled") * 60 > threshold(throttle_rule)
        assert rate_over_5m(before, before, "tessera_sign_ins_total", outcome="throttled") * 60 <= threshold(throttle_rule)


# --- (b) who may read /metrics on the main port -----------------------------------------------------------------------

def test_the_main_port_shows_metrics_only_to_the_bearer_of_the_metrics_token(jwt_secret):
    """Stops anyone who can reach the API from reading the service's counts (how many users, sessions, refusals)."""
    metrics_token = new_metrics_token()
    with tessera(jwt_secret, {"TESSERA_METRICS_TOKEN": metrics_token}) as server:
        url = f"{server.base_url}/metrics"
        wrong_last = metrics_token[:-1] + ("A" if metrics_token[-1] != "A" else "B")
        for headers in ({}, bearer(wrong_last), bearer(metrics_token[:-1]), bearer(metrics_token + "x"), bearer(""),
                        {"Authorization": f"Basic {metrics_token}"}, {"Authorization": metrics_token},
                        {"Authorization": f"Bearer {metrics_token}, Bearer {metrics_token}"}):
            response = requests.get(url, headers=headers, timeout=10)
            assert response.status_code == 401, f"{headers}: {describe(response)}"
            assert response.headers["content-type"] == "application/problem+json"
            assert problem_code(response) == "invalid_token"
            assert response.headers["www-authenticate"].startswith("Bearer ")
            assert metrics_token not in response.text and wrong_last not in response.text
        # The scheme is case-insensitive (RFC 9110 §11.1).
        assert requests.get(url, headers={"Authorization": f"bearer {metrics_token}"}, timeout=10).status_code == 200
        assert scrape(server.base_url, metrics_token).families["tessera_revocation_index_age_seconds"].type == "gauge"


def test_without_a_metrics_token_the_main_port_has_no_metrics(jwt_secret):
    with tessera(jwt_secret) as server:
        for headers in ({}, bearer("anything-at-all-0123456789")):
            response = requests.get(f"{server.base_url}/metrics", headers=headers, timeout=10)
            assert response.status_code == 404, describe(response)


def test_a_metrics_token_shorter_than_16_characters_stops_the_start(jwt_secret):
    """A short token could be guessed by whoever can reach the main port: refused before anything listens."""
    short = "s3cr3t-15-chars"
    assert len(short) == 15
    directory = tempfile.mkdtemp(prefix="tessera-ops-")
    try:
        database_url = f"sqlite://{directory}/t.sqlite"
        env = operations_environment(jwt_secret, database_url, {"TESSERA_METRICS_TOKEN": short})
        result = subprocess.run([BINARY, "serve", "--host", "127.0.0.1", "--port", "0", "--database", database_url], env=env,
                                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
        assert result.returncode != 0
        assert "TESSERA_METRICS_TOKEN must be at least 16 characters" in result.stderr, result.stderr
        assert short not in result.stderr + result.stdout
        assert "tessera ready" not in result.stderr
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# --- (c) the metrics port ---------------------------------------------------------------------------------------------

def non_loopback_address():
    """An IPv4 address of this machine other than loopback, or None (a sandbox may have none)."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1: nothing is sent; the kernel only picks a source address.
        address = probe.getsockname()[0]
        return None if address.startswith("127.") else address
    return None


def test_the_metrics_port_serves_metrics_on_loopback_and_the_main_port_does_not(jwt_secret):
    """Stops a machine elsewhere on the network from reading the counts of a metrics port left without a token."""
    with tessera(jwt_secret, metrics_port=0) as server:
        assert server.metrics_url and server.metrics_url != server.base_url
        metrics = scrape(server.metrics_url)
        assert set(FAMILIES) <= set(metrics.families)
        assert 0 <= metrics.value("tessera_revocation_index_age_seconds") < 2
        # The main port has no /metrics without a token; the metrics port has nothing else.
        assert requests.get(f"{server.base_url}/metrics", timeout=10).status_code == 404
        assert requests.get(f"{server.metrics_url}/health", timeout=10).status_code == 404
        assert requests.get(f"{server.metrics_url}/api/v1/ping-auth", timeout=10).status_code == 404
        # Bound to loopback: not reachable on the machine's other address.
        address = non_loopback_address()
        if address is not None:
            port = int(server.metrics_url.rsplit(":", 1)[1])
            with pytest.raises(requests.ConnectionError):
                requests.get(f"http://{address}:{port}/metrics", timeout=3)


def test_a_metrics_token_is_asked_for_on_the_metrics_port_too(jwt_secret):
    metrics_token = new_metrics_token()
    with tessera(jwt_secret, {"TESSERA_METRICS_TOKEN": metrics_token, "TESSERA_METRICS_PORT": "0"}) as launch:
        port = None
        deadline = time.monotonic() + 10
        while port is None and time.monotonic() < deadline:
            port = launch.address("metrics ready")
            time.sleep(0.05)
        assert port, launch.log()
        metrics_url = f"http://127.0.0.1:{port}"
        refused = requests.get(f"{metrics_url}/metrics", timeout=10)
        assert refused.status_code == 401 and problem_code(refused) == "invalid_token", describe(refused)
        assert requests.get(f"{metrics_url}/metrics", headers=bearer(metrics_token[:-1]), timeout=10).status_code == 401
        assert "tessera_sign_ins" in scrape(metrics_url, metrics_token).families
        assert "tessera_sign_ins" in scrape(launch.base_url, metrics_token).families


# --- (d) LOG_FORMAT=json ----------------------------------------------------------------------------------------------

def request_id_alphabet_string(length):
    alphabet = string.ascii_letters + string.digits + "._:-"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def test_json_logs_carry_request_ids_routes_and_users_and_never_a_secret(jwt_secret):
    """Stops whoever reads the logs (a log pipeline, its storage, its users) from finding a credential in them, and a
    client from writing a line of its own into them through X-Request-Id."""
    metrics_token = new_metrics_token()
    # debug too: the reasons tokens are refused are logged there, never the tokens.
    with tessera(jwt_secret, {"TESSERA_METRICS_TOKEN": metrics_token, "LOG_FORMAT": "json", "LOG_LEVEL": "debug"}) as server:
        secrets_used = {"jwt secret": jwt_secret, "metrics token": metrics_token}
        password = "ops-" + secrets.token_urlsafe(12)
        wrong_password = "ops-wrong-" + secrets.token_urlsafe(12)
        new_password = "ops-new-" + secrets.token_urlsafe(12)
        secrets_used.update(password=password, wrong_password=wrong_password, new_password=new_password)
        email, user_id, first = register_and_sign_in(server, "ops-log", password)
        sign_in(server, email, wrong_password, expect=401)
        second = sign_in(server, email, password)
        refreshed = requests.post(f"{server.base_url}/api/auth/refresh", json={"refreshToken": first["refreshToken"]}, timeout=10)
        assert refreshed.status_code == 200, describe(refreshed)
        pairs = [first, second, refreshed.json()]

        answered = []  # (what was sent as X-Request-Id or None, the response)

        def get(path, token=None, request_id=None, **kwargs):
            headers = dict(bearer(token) if token else {}, **kwargs.pop("headers", {}))
            if request_id is not None:
                headers["X-Request-Id"] = request_id
            response = requests.get(f"{server.base_url}{path}", headers=headers, timeout=10, **kwargs)
            answered.append((request_id, response))
            return response

        access = pairs[2]["accessToken"]
        well_formed = ["client-id_1.2:3", request_id_alphabet_string(1), request_id_alphabet_string(128)]
        malformed = ["a b", request_id_alphabet_string(129), request_id_alphabet_string(200), '{"level":"critical"}', ""]
        for request_id in well_formed + malformed:
            assert get("/api/v1/ping-auth", access, request_id).status_code == 200
        get("/api/v1/ping-auth")
        # Tokens where they do not belong: the query string, other headers, a refused bearer.
        garbage = "gb_" + secrets.token_urlsafe(30)
        secrets_used["garbage bearer"] = garbage
        assert get("/api/v1/ping-auth", garbage).status_code == 401
        assert get(f"/api/v1/ping-auth?access_token={access}&refresh_token={pairs[2]['refreshToken']}").status_code == 401
        assert get("/api/me", access, headers={"X-Api-Key": access, "Cookie": f"tessera_access={access}"}).status_code == 200
        # The spent refresh token presented again by another client (which ends its session), and another session
        # ended by id (a route with a parameter).
        spent = requests.post(f"{server.base_url}/api/auth/refresh", json={"refreshToken": first["refreshToken"]},
                              headers={"User-Agent": "replay/1.0"}, timeout=10)
        assert spent.status_code == 401, describe(spent)
        pairs.append(sign_in(server, email, password))
        access = pairs[1]["accessToken"]
        session_id = pairs[3]["sessionId"]
        assert session_id in {s["id"] for s in get("/api/auth/sessions", access).json()["sessions"]}
        ended = requests.delete(f"{server.base_url}/api/auth/sessions/{session_id}", headers=bearer(access), timeout=10)
        assert ended.status_code == 204, describe(ended)
        changed = requests.post(f"{server.base_url}/api/me/password", json={"currentPassword": password, "newPassword": new_password},
                                headers=bearer(access), timeout=10)
        assert changed.status_code == 200, describe(changed)
        pairs.append(changed.json())
        wrong_metrics_token = new_metrics_token()
        secrets_used["wrong metrics token"] = wrong_metrics_token
        assert get("/metrics", wrong_metrics_token).status_code == 401
        assert get("/metrics", metrics_token).status_code == 200
        logout = requests.post(f"{server.base_url}/api/auth/logout", headers=bearer(pairs[4]["accessToken"]), timeout=10)
        assert logout.status_code == 204
        for index, pair in enumerate(pairs):
            secrets_used[f"access token {index}"] = pair["accessToken"]
            secrets_used[f"access token {index}'s signature"] = pair["accessToken"].rsplit(".", 1)[1]
            secrets_used[f"refresh token {index}"] = pair["refreshToken"]
        server.stop()  # every line is written before reading it all
        log = server.log()
        stdout = server.stdout()

    lines = [json.loads(line) for line in log.splitlines()]  # every line is one JSON object ...
    assert lines and all(isinstance(line, dict) for line in lines)
    for line in lines:  # ... with the four fixed members
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"]), line
        assert line["level"] in {"trace", "debug", "info", "notice", "warning", "error", "critical"}, line
        assert isinstance(line["message"], str) and isinstance(line["logger"], str), line
    access_lines = [line for line in lines if line["message"] == "request"]
    by_id = {}
    for line in access_lines:
        by_id.setdefault(line["request"], []).append(line)
    for sent, response in answered:
        answered_id = response.headers["X-Request-Id"]
        if sent in well_formed:
            assert answered_id == sent
        else:
            assert UUID_PATTERN.match(answered_id) and answered_id != sent, (sent, answered_id)
        assert len(by_id.get(answered_id, [])) == 1, f"{answered_id}: {by_id.get(answered_id)}"
    for request_id in malformed:
        assert request_id not in by_id
        if len(request_id) > 3:
            assert request_id not in log
    ping_line = by_id[well_formed[0]][0]
    assert ping_line["route"] == "/api/v1/ping-auth" and ping_line["method"] == "GET" and ping_line["user"] == user_id
    assert type(ping_line["status"]) is int and ping_line["status"] == 200
    assert type(ping_line["durationMs"]) in (int, float) and 0 <= ping_line["durationMs"] < 10_000
    anonymous = by_id[answered[len(well_formed) + len(malformed)][1].headers["X-Request-Id"]][0]
    assert anonymous["status"] == 401 and "user" not in anonymous
    ended_line = by_id[ended.headers["X-Request-Id"]][0]
    assert ended_line["route"] == "/api/auth/sessions/{id}" and ended_line["status"] == 204 and ended_line["user"] == user_id
    assert session_id not in json.dumps(ended_line)
    assert all(type(line["status"]) is int for line in access_lines)
    # Nothing anywhere in the run's output is a password, a token or a secret (stdout is empty of them too).
    leaks = [name for name, value in secrets_used.items() if value in log or value in stdout]
    assert not leaks, f"logged: {leaks}"
