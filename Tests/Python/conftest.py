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
    environment it was started with (the same JWT_SECRET, for those commands)."""

    def __init__(self, base_url, database_url, env):
        self.base_url = base_url
        self.database_url = database_url
        self.env = env


@contextlib.contextmanager
def running_tessera(jwt_secret, extra_env=None):
    """Starts `tessera serve` on 127.0.0.1 with a fresh SQLite database; yields a TesseraProcess; stops it afterwards.

    extra_env: variables to set on top of the clean development environment (e.g. TESSERA_TRUSTED_PROXIES).
    """
    if not os.access(BINARY, os.X_OK):
        pytest.skip(f"no tessera binary at {BINARY}: run scripts/test (it builds one) or set TESSERA_BINARY")
    directory = tempfile.mkdtemp(prefix="tessera-pytest-")
    env = dict(os.environ, JWT_SECRET=jwt_secret, BCRYPT_COST="4")
    # Development mode, open registration and the default issuer and audience, whatever the caller's shell has set.
    for name in ("TESSERA_ENV", "DATABASE_URL", "TESSERA_REGISTRATION", "JWT_ISSUER", "JWT_AUDIENCE", "ACCESS_TOKEN_TTL",
                 "TESSERA_TRUSTED_PROXIES"):
        env.pop(name, None)
    env.update(extra_env or {})
    database_url = f"sqlite://{directory}/t.sqlite"
    log_path = os.path.join(directory, "server.log")
    log = open(log_path, "wb")
    process = subprocess.Popen(
        [BINARY, "serve", "--host", "127.0.0.1", "--port", "0", "--database", database_url],
        env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
    )

    def server_log():
        with open(log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    try:
        base_url = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"tessera serve exited with {process.returncode}:\n{server_log()}")
            if base_url is None:
                # --port 0: the kernel picks a free port, and the server logs which.
                match = re.search(r"listening on 127\.0\.0\.1:(\d+)", server_log())
                if match and int(match.group(1)) > 0:
                    base_url = f"http://127.0.0.1:{match.group(1)}"
            if base_url is not None:
                try:
                    if requests.get(f"{base_url}/health", timeout=2).status_code == 200:
                        break
                except requests.RequestException:
                    pass
            time.sleep(0.05)
        else:
            raise RuntimeError(f"tessera serve did not answer GET /health with 200 within 30 s:\n{server_log()}")
        yield TesseraProcess(base_url, database_url, env)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def tessera_server(jwt_secret):
    """Starts `tessera serve` on 127.0.0.1 with a fresh SQLite database; yields its base URL; stops it afterwards."""
    with running_tessera(jwt_secret) as server:
        yield server.base_url
