"""`tessera backup` beside a running server under write load, and a restore from what it wrote, with real processes.

What these tests stop:
  - a backup that misses revocations the server had already acknowledged (a stale or torn copy), which a restore
    would turn back into working tokens: every sign-out and operator revocation answered 2xx before the backup
    command started must be in the copy's revocation log, and a server started on the restored copy must refuse
    every one of those tokens (while a token never revoked is still accepted: the control that the restored server
    is not simply refusing everything);
  - a copy taken table by table rather than at one instant: each sign-out's log row, its session's invalidation
    and its audit row are written in one transaction, and each operator revocation's log row with the account's
    new cut-off, so the copy must hold all of them or none;
  - a backup that holds the server's writers up: requests must keep being answered while the command runs;
  - a backup that overwrites a file already at its path (the last good backup): exit 1, one line, the file
    untouched; and a PostgreSQL DATABASE_URL, which must be refused with a pointer to pg_dump.
Logs stay in pytest's tmp_path and are printed when a test fails.
"""
import json
import os
import shutil
import sqlite3
import subprocess
import threading
import time

import requests

from conftest import BINARY, TesseraLaunch, describe, new_email, problem_code, require_binary, tessera_environment

PASSWORD = "correct horse battery staple"
HTTP_TIMEOUT = 10
WORKERS = 6
ACKS_BEFORE_BACKUP = 120   # acknowledged revocations before the backup starts: it is taken in the middle of the load
LOAD_AFTER_BACKUP = 1.0    # seconds the load goes on after the backup command returned


def run_tessera(env, *args, stdin=None, timeout=60):
    return subprocess.run([BINARY, *args], env=env, input=stdin, capture_output=True, text=True, timeout=timeout)


class Load:
    """Threads that register accounts, sign in twice, and revoke: a sign-out (POST /api/auth/logout), a session
    ended from another of its user's sessions (DELETE /api/auth/sessions/{id}), or an operator's revoke of the
    account (POST /api/admin/revoke). Every acknowledged revocation is recorded with the time its answer arrived;
    one session in three is never revoked (the control)."""

    def __init__(self, base_url, admin_token):
        self.base_url = base_url
        self.admin = {"Authorization": f"Bearer {admin_token}"}
        self.lock = threading.Lock()
        self.acks = []       # {"kind": "session" | "user", "at", "pair", ...}
        self.keepers = []    # {"at", "pair"}: never revoked
        self.failures = []
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._work, args=(n,), daemon=True) for n in range(WORKERS)]

    def start(self):
        for thread in self.threads:
            thread.start()

    def stop(self):
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def ack_count(self):
        with self.lock:
            return len(self.acks)

    def _record(self, target, entry):
        with self.lock:
            target.append(entry)

    def _expect(self, response, status, what):
        if response.status_code != status:
            raise AssertionError(f"{what}: expected {status}, got {describe(response)}")

    def _work(self, worker):
        http = requests.Session()
        round_number = 0
        try:
            while not self.stopping.is_set():
                round_number += 1
                email = new_email(f"load{worker}-{round_number}")
                response = http.post(f"{self.base_url}/api/auth/register", json={"email": email, "password": PASSWORD}, timeout=HTTP_TIMEOUT)
                self._expect(response, 201, f"register {email}")
                pairs = []
                for _ in range(2):
                    response = http.post(f"{self.base_url}/api/auth/login", json={"email": email, "password": PASSWORD}, timeout=HTTP_TIMEOUT)
                    self._expect(response, 200, f"login {email}")
                    pairs.append(response.json())
                first, second = pairs
                response = http.post(f"{self.base_url}/api/auth/logout", headers=bearer(first), timeout=HTTP_TIMEOUT)
                self._expect(response, 204, "logout")
                self._record(self.acks, {"kind": "session", "at": time.monotonic(), "pair": first, "sessionId": first["sessionId"].lower()})
                if round_number % 3 == 0:
                    response = http.post(f"{self.base_url}/api/admin/revoke", json={"userIds": [second["user"]["id"]], "reason": "backup test"},
                                         headers=self.admin, timeout=HTTP_TIMEOUT)
                    self._expect(response, 200, "admin revoke")
                    assert response.json() == {"revoked": 1}, describe(response)
                    self._record(self.acks, {"kind": "user", "at": time.monotonic(), "pair": second, "userId": second["user"]["id"].lower()})
                elif round_number % 3 == 1:
                    # Ended from another session of the same account (a third sign-in), as "sign out that device" does.
                    response = http.post(f"{self.base_url}/api/auth/login", json={"email": email, "password": PASSWORD}, timeout=HTTP_TIMEOUT)
                    self._expect(response, 200, f"login {email}")
                    third = response.json()
                    response = http.delete(f"{self.base_url}/api/auth/sessions/{second['sessionId']}", headers=bearer(third), timeout=HTTP_TIMEOUT)
                    self._expect(response, 204, "delete session")
                    self._record(self.acks, {"kind": "session", "at": time.monotonic(), "pair": second, "sessionId": second["sessionId"].lower()})
                else:
                    self._record(self.keepers, {"at": time.monotonic(), "pair": second})
        except BaseException as error:  # noqa: BLE001 - reported by the test, in the main thread
            self._record(self.failures, f"worker {worker}: {error!r}")
            self.stopping.set()


def bearer(pair):
    return {"Authorization": f"Bearer {pair['accessToken']}"}


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout} s"
        time.sleep(0.02)


def read_backup(path):
    """The copy's revocation log, sign-outs and account cut-offs, read with Python's sqlite3, read-only."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = connection.execute("SELECT seq, kind, session_id, user_id, accepted_from_version, cause FROM revocations").fetchall()
        invalidated = {row[0] for row in connection.execute("SELECT id FROM sessions WHERE invalidated_at IS NOT NULL AND invalidated_reason = 'logout'")}
        audited = {row[0] for row in connection.execute("SELECT session_id FROM audit_events WHERE event = 'AUTH_LOGOUT'")}
        cutoffs = dict(connection.execute("SELECT id, accepted_from_version FROM users").fetchall())
        counts = {
            "users": connection.execute("SELECT COUNT(*) FROM users").fetchone()[0],
            "auditRows": connection.execute("SELECT COUNT(*) FROM audit_events").fetchone()[0],
            "schemaVersion": connection.execute("SELECT MAX(version) FROM tessera_migrations").fetchone()[0],
        }
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        connection.close()
    return rows, invalidated, audited, cutoffs, counts


def test_a_backup_under_write_load_holds_every_revocation_acknowledged_before_it(jwt_secret, tmp_path):
    require_binary()
    database = tmp_path / "live.sqlite"
    env = tessera_environment(jwt_secret, f"sqlite://{database}")
    launches = [TesseraLaunch(f"sqlite://{database}", env, str(tmp_path / "server.log"))]
    load = None
    try:
        server = launches[0].wait_until_healthy()
        admin_email = new_email("admin")
        added = run_tessera(env, "users", "add", admin_email, "--admin", "--password-stdin", stdin=PASSWORD + "\n")
        assert added.returncode == 0, f"users add: {added.stdout}{added.stderr}"
        response = requests.post(f"{server.base_url}/api/auth/login", json={"email": admin_email, "password": PASSWORD}, timeout=HTTP_TIMEOUT)
        assert response.status_code == 200, describe(response)

        load = Load(server.base_url, response.json()["accessToken"])
        load.start()
        wait_for(lambda: load.ack_count() >= ACKS_BEFORE_BACKUP or load.failures, 120, f"{ACKS_BEFORE_BACKUP} acknowledged revocations")
        assert not load.failures, load.failures

        backup = tmp_path / "backups" / "tessera-backup.sqlite"
        backup.parent.mkdir()
        backup_started = time.monotonic()
        result = run_tessera(env, "backup", str(backup), "--json")
        backup_finished = time.monotonic()
        time.sleep(LOAD_AFTER_BACKUP)
        load.stop()
        assert not load.failures, load.failures
        assert result.returncode == 0, f"tessera backup: exit {result.returncode}\n{result.stdout}{result.stderr}"
        summary = json.loads(result.stdout)

        acknowledged = [ack for ack in load.acks if ack["at"] < backup_started]
        during = [ack for ack in load.acks if backup_started <= ack["at"] <= backup_finished]
        keepers = [keeper for keeper in load.keepers if keeper["at"] < backup_started]
        # (Lengths only, here and below: pytest would print a list of token pairs.)
        assert len(acknowledged) >= ACKS_BEFORE_BACKUP and len(keepers) > 0, (len(acknowledged), len(keepers))
        # The server's writers are not held up by the backup's read: revocations kept being acknowledged meanwhile.
        assert len(during) > 0, f"no revocation was acknowledged during the {backup_finished - backup_started:.2f} s the backup ran"
        print(f"{len(acknowledged)} revocations acknowledged before the backup, {len(during)} while it ran, {len(load.acks)} in all")
    finally:
        if load is not None:
            load.stop()
        for launch in launches:
            launch.stop()

    # What the command reported is what the file holds.
    rows, invalidated, audited, cutoffs, counts = read_backup(backup)
    assert summary["path"] == str(backup)
    assert summary["bytes"] == os.path.getsize(backup)
    assert summary["schemaVersion"] == counts["schemaVersion"]
    assert summary["users"] == counts["users"] and summary["auditRows"] == counts["auditRows"]
    assert summary["revocationLogRows"] == len(rows)
    assert summary["newestRevocationSeq"] == max(row[0] for row in rows)

    # Every revocation acknowledged before the backup began is in it.
    signed_out = {row[2] for row in rows if row[1] == "session"}
    revoked_users = {row[3] for row in rows if row[1] == "subject" and row[5] == "admin_revoke"}
    missing = [ack for ack in acknowledged
               if (ack["kind"] == "session" and ack["sessionId"] not in signed_out) or (ack["kind"] == "user" and ack["userId"] not in revoked_users)]
    assert len(missing) == 0, f"{len(missing)} acknowledged revocations are not in the backup, e.g. {[(a['kind'], a.get('sessionId') or a.get('userId')) for a in missing[:5]]}"

    # One instant: each sign-out's three writes are all there or all absent; each operator revocation's account
    # carries the cut-off its log row recorded.
    assert signed_out == invalidated == audited, (len(signed_out), len(invalidated), len(audited))
    for seq, kind, _, user_id, accepted_from, cause in rows:
        if kind == "subject":
            assert cutoffs[user_id] >= accepted_from, f"log row {seq} cuts {user_id} at {accepted_from}, the account at {cutoffs[user_id]}"

    # Restore as docs/OPERATIONS.md says: the server stopped, the file put in place (no -wal/-shm beside it), started.
    restored = tmp_path / "restored" / "tessera.sqlite"
    restored.parent.mkdir()
    shutil.copyfile(backup, restored)
    launch = TesseraLaunch(f"sqlite://{restored}", env, str(tmp_path / "restored-server.log"))
    try:
        server = launch.wait_until_healthy()
        http = requests.Session()
        for ack in acknowledged:
            response = http.get(f"{server.base_url}/api/me", headers=bearer(ack["pair"]), timeout=HTTP_TIMEOUT)
            assert response.status_code == 401 and problem_code(response) == "token_revoked", \
                f"a token whose revocation ({ack['kind']}) was acknowledged before the backup, on the restored copy: {describe(response)}"
            if ack["kind"] == "session":
                response = http.post(f"{server.base_url}/api/auth/refresh", json={"refreshToken": ack["pair"]["refreshToken"]}, timeout=HTTP_TIMEOUT)
                assert response.status_code == 401, f"the refresh token of a session signed out before the backup: {describe(response)}"
        for keeper in keepers:
            response = http.get(f"{server.base_url}/api/me", headers=bearer(keeper["pair"]), timeout=HTTP_TIMEOUT)
            assert response.status_code == 200, f"a token never revoked, on the restored copy: {describe(response)}"
    except BaseException:
        print(launch.log()[-6000:])
        raise
    finally:
        launch.stop()


def test_a_backup_to_a_path_that_exists_fails_and_leaves_the_file_untouched(jwt_secret, tmp_path):
    require_binary()
    database = tmp_path / "live.sqlite"
    env = tessera_environment(jwt_secret, f"sqlite://{database}")
    launch = TesseraLaunch(f"sqlite://{database}", env, str(tmp_path / "server.log"))
    try:
        server = launch.wait_until_healthy()
        response = requests.post(f"{server.base_url}/api/auth/register", json={"email": new_email("ann"), "password": PASSWORD}, timeout=HTTP_TIMEOUT)
        assert response.status_code == 201, describe(response)
        existing = tmp_path / "last-good-backup.sqlite"
        existing.write_bytes(b"yesterday's backup, not to be lost")
        before = os.stat(existing)
        result = run_tessera(env, "backup", str(existing))
        assert result.returncode == 1, f"exit {result.returncode}\n{result.stdout}{result.stderr}"
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "exists" in lines[0] and "never overwrites" in lines[0], result.stderr
        assert existing.read_bytes() == b"yesterday's backup, not to be lost"
        after = os.stat(existing)
        assert (after.st_mtime_ns, after.st_size, after.st_ino) == (before.st_mtime_ns, before.st_size, before.st_ino)

        # A new path works beside the same server, and the command says what the copy holds.
        fresh = tmp_path / "fresh.sqlite"
        result = run_tessera(env, "backup", str(fresh))
        assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}{result.stderr}"
        assert "integrity check ok" in result.stdout and "users:" in result.stdout and "revocation log:" in result.stdout, result.stdout
    finally:
        launch.stop()


def test_a_postgres_database_is_refused_with_a_pointer_to_pg_dump(jwt_secret, tmp_path):
    require_binary()
    env = tessera_environment(jwt_secret, "postgres://tessera@127.0.0.1:1/tessera")
    target = tmp_path / "backup.sqlite"
    result = run_tessera(env, "backup", str(target))
    assert result.returncode == 1, f"exit {result.returncode}\n{result.stdout}{result.stderr}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "pg_dump" in lines[0] and "docs/OPERATIONS.md" in lines[0], result.stderr
    assert not target.exists()
