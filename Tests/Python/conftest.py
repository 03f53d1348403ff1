"""Fixtures for the Python suites: the real `tessera serve` binary on a free loopback port.

scripts/test runs these with .build-venv's pytest and TESSERA_BINARY set to the debug binary it just built; by hand:
    TESSERA_BINARY=.build/debug/tessera .build-venv/bin/python -m pytest -q -p no:cacheprovider Tests/Python
"""
import contextlib
import os
import re
import secrets
import shutil
import string
import subprocess
import tempfile
import time

import pytest
import requests

BINARY = os.environ.get("TESSERA_BINARY", os.path.join(os.path.dirname(__file__), "..", "..", ".build", "debug", "tessera"))


@pytest.fixture(scope="session")
def jwt_secret():
    """The HS256 secret the server signs with: 40 random letters and digits."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(40))


class TesseraProcess:
    """A running `tessera serve`: its base URL, its database URL (for `tessera` commands beside it) and the
    environment it was started with (the same JWT_SECRET, for those commands); `log()` is what it has logged so far,
    `stop()` stops it (its database stays)."""

    def __init__(self, base_url, database_url, env, launch=None):
        self.base_url = base_url
        self.database_url = database_url
        self.env = env
        self._launch = launch

    def log(self):
        return self._launch.log() if self._launch else ""

    def stop(self):
        if self._launch:
            self._launch.stop()


def require_binary():
    if not os.access(BINARY, os.X_OK):
        pytest.skip(f"no tessera binary at {BINARY}: run scripts/test (it builds one) or set TESSERA_BINARY")


def tessera_environment(jwt_secret, database_url=None, extra_env=None):
    """The environment `tessera` runs in: the caller's, with the JWT secret, bcrypt cost 4, development mode, open
    registration and the default issuer and audience whatever the caller's shell has set; DATABASE_URL when given."""
    env = dict(os.environ, JWT_SECRET=jwt_secret, BCRYPT_COST="4")
    for name in ("TESSERA_ENV", "DATABASE_URL", "TESSERA_REGISTRATION", "JWT_ISSUER", "JWT_AUDIENCE", "ACCESS_TOKEN_TTL",
                 "TESSERA_TRUSTED_PROXIES", "JWT_ALGORITHM", "JWT_PREVIOUS_SECRETS", "TESSERA_KEY_ENCRYPTION_KEY",
                 "TESSERA_KEY_ROTATION", "TESSERA_KEY_PUBLICATION"):
        env.pop(name, None)
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    env.update(extra_env or {})
    return env


def problem_code(response):
    """The `code` of a problem+json answer (None when the body is not JSON)."""
    try:
        return response.json().get("code")
    except ValueError:
        return None


def describe(response):
    """An answer in one line, for assertion messages."""
    return f"{response.status_code} {response.headers.get('content-type')} {response.text[:300]!r}"


def new_email(label):
    return f"{label}-{secrets.token_hex(4)}@example.org"


class LoggedProcess:
    """A subprocess writing to `log_path` through `self._log`: what it has logged so far, and a stop that waits for
    it (SIGTERM, then SIGKILL after 15 s)."""

    def log(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not self._log.closed:
            self._log.close()


class TesseraLaunch(LoggedProcess):
    """A `tessera serve` started on 127.0.0.1 with `--port 0` (or on `port`, for a restart where a client already
    looks), logging to `log_path`. Start several and then call `wait_until_healthy()` on each to have them start at
    the same moment."""

    def __init__(self, database_url, env, log_path, port=0):
        require_binary()
        self.database_url = database_url
        self.env = env
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(
            [BINARY, "serve", "--host", "127.0.0.1", "--port", str(port), "--database", database_url],
            env=env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
        )

    def wait_until_healthy(self, timeout=30):
        """Waits until the server logs its port and answers GET /health with 200; returns its TesseraProcess."""
        base_url = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tessera serve exited with {self.process.returncode}:\n{self.log()}")
            if base_url is None:
                # --port 0: the kernel picks a free port, and the server logs which.
                match = re.search(r"listening on 127\.0\.0\.1:(\d+)", self.log())
                if match and int(match.group(1)) > 0:
                    base_url = f"http://127.0.0.1:{match.group(1)}"
            if base_url is not None:
                try:
                    if requests.get(f"{base_url}/health", timeout=2).status_code == 200:
                        return TesseraProcess(base_url, self.database_url, self.env, self)
                except requests.RequestException:
                    pass
            time.sleep(0.05)
        raise RuntimeError(f"tessera serve did not answer GET /health with 200 within {timeout} s:\n{self.log()}")


@contextlib.contextmanager
def running_tessera(jwt_secret, extra_env=None):
    """Starts `tessera serve` on 127.0.0.1 with a fresh SQLite database; yields a TesseraProcess; stops it afterwards.

    extra_env: variables to set on top of the clean development environment (e.g. TESSERA_TRUSTED_PROXIES).
    """
    require_binary()
    directory = tempfile.mkdtemp(prefix="tessera-pytest-")
    env = tessera_environment(jwt_secret, extra_env=extra_env)
    launch = None
    try:
        launch = TesseraLaunch(f"sqlite://{directory}/t.sqlite", env, os.path.join(directory, "server.log"))
        yield launch.wait_until_healthy()
    finally:
        if launch is not None:
            launch.stop()
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def running_tessera_on(jwt_secret, database_url, log_dir, extra_env=None):
    """Starts `tessera serve` on 127.0.0.1 on an existing database (a `postgres://` URL; the server migrates it);
    yields a TesseraProcess; stops it afterwards. The database is left as it is; the log stays in log_dir."""
    require_binary()
    env = tessera_environment(jwt_secret, database_url, extra_env)
    launch = TesseraLaunch(database_url, env, os.path.join(log_dir, f"server-{secrets.token_hex(4)}.log"))
    try:
        yield launch.wait_until_healthy()
    finally:
        launch.stop()


@pytest.fixture(scope="session")
def tessera_server(jwt_secret):
    """Starts `tessera serve` on 127.0.0.1 with a fresh SQLite database; yields its base URL; stops it afterwards."""
    with running_tessera(jwt_secret) as server:
        yield server.base_url


def run_cli(server, *args, expect=0):
    """Runs `tessera ARGS --database URL` against a running server's database and checks its exit status."""
    result = subprocess.run([BINARY, *args, "--database", server.database_url], env=server.env, capture_output=True, text=True,
                            timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == expect, f"{args}: {result.returncode} {result.stdout!r} {result.stderr!r}"
    return result
