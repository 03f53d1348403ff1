"""`tessera users role` and `tessera users delete` beside a running `tessera serve` on one SQLite file, while the
account's tokens are in use: the server refuses them within a second, a new sign-in carries the new role, and after a
deletion the file itself holds the address nowhere (users, sessions, audit_events) while the rows stay.
"""
import base64
import json
import sqlite3
import subprocess
import threading
import time

import pytest
import requests

from conftest import new_email, running_tessera, run_cli

PASSWORD = "correct horse battery"
TIMEOUT = 10


@pytest.fixture
def server(jwt_secret):
    with running_tessera(jwt_secret) as server:
        yield server


cli = run_cli


def database(server):
    path = server.database_url[len("sqlite://"):]
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def sign_in(server, email, user_agent="pytest", device=None):
    body = {"email": email, "password": PASSWORD}
    if device:
        body["deviceName"] = device
    response = requests.post(f"{server.base_url}/api/auth/login", json=body, headers={"User-Agent": user_agent}, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()


def register(server, email):
    response = requests.post(f"{server.base_url}/api/auth/register", json={"email": email, "password": PASSWORD}, timeout=TIMEOUT)
    assert response.status_code == 201, response.text
    return response.json()["user"]["id"]


def ping(server, token):
    return requests.get(f"{server.base_url}/api/v1/ping-auth", headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT).status_code


class InUse:
    """A token used in a loop by another thread, as a client would, recording when each answer arrived."""

    def __init__(self, server, token):
        self.server, self.token = server, token
        self.answers = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            status = ping(self.server, self.token)
            self.answers.append((time.monotonic(), status))
            time.sleep(0.01)

    def __enter__(self):
        self._thread.start()
        deadline = time.monotonic() + 5
        while not self.answers and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.answers and self.answers[-1][1] == 200, self.answers[-1:]
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)

    def refused_within(self, since, seconds):
        """Waits until an answer after `since` is 401 (at most `seconds` after it); every later answer must be 401 too."""
        deadline = since + seconds
        while time.monotonic() < deadline + 0.5:
            refused = [at for at, status in self.answers if at > since and status == 401]
            if refused:
                time.sleep(0.2)
                later = [status for at, status in self.answers if at >= refused[0]]
                assert set(later) == {401}, later
                return refused[0] - since
            time.sleep(0.01)
        raise AssertionError(f"still accepted {seconds} s after the command: {self.answers[-3:]}")


def role_claim(access_token):
    payload = access_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["role"]


def test_a_role_change_by_the_cli_is_refused_by_the_running_server_within_a_second(server):
    email = new_email("promoted")
    user_id = register(server, email)
    pair = sign_in(server, email)
    assert role_claim(pair["accessToken"]) == "user"
    with InUse(server, pair["accessToken"]) as in_use:
        result = cli(server, "users", "role", email, "admin")
        done = time.monotonic()
        assert "is now admin (was user)" in result.stdout
        assert in_use.refused_within(done, 1.0) <= 1.0
    refresh = requests.post(f"{server.base_url}/api/auth/refresh", json={"refreshToken": pair["refreshToken"]}, timeout=TIMEOUT)
    assert refresh.status_code == 401
    admin = sign_in(server, email)
    assert role_claim(admin["accessToken"]) == "admin"
    assert requests.get(f"{server.base_url}/api/admin/users", headers={"Authorization": f"Bearer {admin['accessToken']}"},
                        timeout=TIMEOUT).status_code == 200

    # The same role again changes nothing and revokes nothing; the last admin is not demoted.
    assert "already" in cli(server, "users", "role", email, "admin").stdout
    assert ping(server, admin["accessToken"]) == 200
    refused = cli(server, "users", "role", email, "user", expect=1)
    assert "last active admin" in refused.stderr
    assert ping(server, admin["accessToken"]) == 200
    assert cli(server, "users", "role", email, "root", expect=2).stdout == ""

    with database(server) as db:
        causes = db.execute("SELECT cause FROM revocations WHERE user_id = ? ORDER BY seq", (user_id,)).fetchall()
        assert causes == [("role_changed",)]
        audit = db.execute("SELECT details FROM audit_events WHERE event = 'ROLE_CHANGED' AND subject_id = ?", (user_id,)).fetchall()
        assert [json.loads(details) for (details,) in audit] == [{"from": "user", "to": "admin"}]


def test_a_deletion_by_the_cli_is_refused_by_the_running_server_and_leaves_no_address_in_the_file(server):
    email = new_email("Leaving")
    user_id = register(server, email)
    phone = sign_in(server, email, user_agent="LeaverPhone/1.0", device="Leaver's phone")
    browser = sign_in(server, email, user_agent="LeaverBrowser/2.0")
    wrong = requests.post(f"{server.base_url}/api/auth/login", json={"email": email, "password": "not the password"},
                          headers={"User-Agent": "LeaverGuess/3.0"}, timeout=TIMEOUT)
    assert wrong.status_code == 401
    with database(server) as db:
        audit_rows = db.execute("SELECT count(*) FROM audit_events").fetchone()[0]

    # Destructive: no terminal and no --yes is a refusal that changes nothing; a dry run counts and changes nothing.
    assert "--yes" in cli(server, "users", "delete", email, expect=2).stderr
    dry = cli(server, "users", "delete", email, "--dry-run").stdout.strip()
    assert dry == "dry run, nothing changed: would cut 1 account, 2 live sessions, 2 live access tokens", dry
    assert ping(server, phone["accessToken"]) == 200

    with InUse(server, phone["accessToken"]) as in_use:
        result = cli(server, "users", "delete", email, "--yes")
        done = time.monotonic()
        assert user_id in result.stdout
        assert in_use.refused_within(done, 1.0) <= 1.0
    assert ping(server, browser["accessToken"]) == 401
    for pair in (phone, browser):
        refresh = requests.post(f"{server.base_url}/api/auth/refresh", json={"refreshToken": pair["refreshToken"]}, timeout=TIMEOUT)
        assert refresh.status_code == 401
    traces = [email.lower(), "leaver's phone", "leaverphone", "leaverbrowser", "leaverguess"]
    with database(server) as db:
        row = db.execute(
            "SELECT email, email_normalized, password_hash, is_active, deleted_at FROM users WHERE id = ?", (user_id,)
        ).fetchone()
        assert row[0] == row[1] == f"deleted:{user_id}"
        assert not row[2].startswith("$2") and row[3] == 0 and row[4] is not None
        users = " ".join(" ".join(map(str, r)) for r in db.execute("SELECT * FROM users")).lower()
        sessions = db.execute(
            "SELECT ip, user_agent, device_name, terminal_id, invalidated_at FROM sessions WHERE user_id = ?", (user_id,)
        ).fetchall()
        assert len(sessions) == 2 and all(s[:4] == (None, None, None, None) and s[4] is not None for s in sessions)
        everything = " ".join(" ".join(map(str, r)) for r in db.execute("SELECT * FROM sessions")).lower()
        audit = db.execute("SELECT event, subject_id, ip, user_agent, details FROM audit_events ORDER BY id").fetchall()
        audit_text = " ".join(" ".join(map(str, r)) for r in audit).lower()
        for trace in traces:
            assert trace not in users and trace not in everything and trace not in audit_text, trace
        assert len(audit) == audit_rows + 1, "every audit row stays, and the deletion is one more"
        assert audit[-1][:2] == ("ACCOUNT_DELETED", user_id)
        assert sum(1 for event, subject, *_ in audit if subject == user_id) == 5

    # The deleted account cannot sign in (a failed sign-in from now on is a new row, about whoever tries); the
    # address is free again: a new account, with a new id, which the old tokens never reach.
    login = requests.post(f"{server.base_url}/api/auth/login", json={"email": email, "password": PASSWORD}, timeout=TIMEOUT)
    assert login.status_code == 401
    new_id = register(server, email)
    assert new_id != user_id
    assert ping(server, sign_in(server, email)["accessToken"]) == 200
    assert ping(server, phone["accessToken"]) == 401
