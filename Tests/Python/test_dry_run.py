"""`--dry-run` of the real CLI beside a real `tessera serve` on one SQLite file.

Each test signs accounts in through the server, runs the command with `--dry-run` (no `--yes`, no terminal: a dry
run asks nothing), checks that it wrote nothing to the file (log, audit, accounts, sessions) and that the server still
accepts every token, then runs the command for real and checks that the server refuses (or, for `unrevoke`, accepts
again) exactly as many access tokens as the dry run counted.
"""
import re
import sqlite3
import subprocess
import time

import pytest
import requests

from conftest import new_email, running_tessera, run_cli

PASSWORD = "correct horse battery"
TIMEOUT = 10
LINE = re.compile(
    r"^dry run, nothing changed: would (cut|revive) (\d+) accounts?, (\d+) (?:live )?sessions?, (\d+) (?:live )?access tokens?$"
)


@pytest.fixture
def server(jwt_secret):
    """A server of its own per test, so that counts over every account are exact."""
    with running_tessera(jwt_secret) as server:
        yield server


cli = run_cli


def dry_run(server, *args):
    """Runs the command with --dry-run; returns (verb, accounts, sessions, access tokens) after checking that the
    file did not change."""
    before = stored(server)
    result = cli(server, *args, "--dry-run")
    assert result.stderr == ""
    match = LINE.match(result.stdout.strip())
    assert match, result.stdout
    assert stored(server) == before, "a dry run writes nothing"
    return match.group(1), int(match.group(2)), int(match.group(3)), int(match.group(4))


def stored(server):
    """Everything a dry run must leave as it was, read from the server's SQLite file."""
    path = server.database_url[len("sqlite://"):]
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return {
            "revocations": db.execute("SELECT seq, kind, cause FROM revocations ORDER BY seq").fetchall(),
            "audit": db.execute("SELECT id, event FROM audit_events ORDER BY id").fetchall(),
            "users": db.execute("SELECT id, is_active, token_version, accepted_from_version FROM users ORDER BY id").fetchall(),
            "global": db.execute("SELECT epoch, accepted_epoch FROM global_state").fetchall(),
            "sessions": db.execute("SELECT id, invalidated_at, token_version, epoch FROM sessions ORDER BY id").fetchall(),
        }


def sign_in(server, email, times):
    """Registers the account (once) and signs it in `times` times; returns its access tokens."""
    requests.post(f"{server.base_url}/api/auth/register", json={"email": email, "password": PASSWORD}, timeout=TIMEOUT)
    tokens = []
    for _ in range(times):
        response = requests.post(f"{server.base_url}/api/auth/login", json={"email": email, "password": PASSWORD}, timeout=TIMEOUT)
        assert response.status_code == 200, response.text
        tokens.append(response.json()["accessToken"])
    return tokens


def accepted(server, tokens):
    return sum(
        requests.get(f"{server.base_url}/api/v1/ping-auth", headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT).status_code == 200
        for token in tokens
    )


def settles(server, tokens, expected, within=3.0):
    """Whether the server comes to accept exactly `expected` of the tokens within `within` seconds (what the CLI
    writes reaches a running server within a second)."""
    deadline = time.monotonic() + within
    while True:
        count = accepted(server, tokens)
        if count == expected or time.monotonic() > deadline:
            return count == expected
        time.sleep(0.1)


def test_revoke_dry_run_counts_what_the_revoke_cuts(server):
    ann, bob = new_email("ann"), new_email("bob")
    ann_tokens, bob_tokens = sign_in(server, ann, 2), sign_in(server, bob, 1)

    assert dry_run(server, "revoke", "--user", ann) == ("cut", 1, 2, 2)
    assert accepted(server, ann_tokens + bob_tokens) == 3, "the dry run cut nothing"

    cli(server, "revoke", "--user", ann)
    assert settles(server, ann_tokens, 0)
    assert accepted(server, bob_tokens) == 1


def test_revoke_dry_run_of_several_users_counts_each_account_once(server):
    ann, bob, cy = new_email("ann"), new_email("bob"), new_email("cy")
    tokens = sign_in(server, ann, 2) + sign_in(server, bob, 1)
    sign_in(server, cy, 0)

    _, accounts, sessions, access_tokens = dry_run(server, "revoke", "--user", ann, "--user", bob, "--user", cy, "--user", ann)
    assert (accounts, sessions, access_tokens) == (3, 3, 3)
    assert accepted(server, tokens) == 3

    real = cli(server, "revoke", "--user", ann, "--user", bob, "--user", cy, "--user", ann)
    assert f"of {accounts} users" in real.stdout
    assert settles(server, tokens, 3 - access_tokens)


def test_revoke_all_dry_run_needs_no_yes_and_counts_every_account(server):
    tokens = sign_in(server, new_email("ann"), 2) + sign_in(server, new_email("bob"), 1)
    sign_in(server, new_email("cy"), 0)

    # Without a terminal the real command refuses without --yes; the dry run does not ask.
    refused = cli(server, "revoke-all", expect=2)
    assert "--yes" in refused.stderr
    assert dry_run(server, "revoke-all") == ("cut", 3, 3, 3)
    assert accepted(server, tokens) == 3

    cli(server, "revoke-all", "--yes")
    assert settles(server, tokens, 0)


def test_deactivate_dry_run_leaves_the_account_active(server):
    ann = new_email("ann")
    tokens = sign_in(server, ann, 2)

    assert dry_run(server, "users", "deactivate", ann) == ("cut", 1, 2, 2)
    response = requests.post(f"{server.base_url}/api/auth/login", json={"email": ann, "password": PASSWORD}, timeout=TIMEOUT)
    assert response.status_code == 200, "still active: sign-in works"
    tokens.append(response.json()["accessToken"])

    cli(server, "users", "deactivate", ann)
    assert settles(server, tokens, 0)


def test_unrevoke_dry_run_counts_what_the_undo_revives(server):
    ann = new_email("ann")
    tokens = sign_in(server, ann, 2)
    cli(server, "revoke", "--user", ann)
    assert settles(server, tokens, 0)
    later = sign_in(server, ann, 1)

    assert dry_run(server, "unrevoke", "--user", ann) == ("revive", 1, 2, 2)
    assert accepted(server, tokens) == 0, "the dry run revived nothing"

    cli(server, "unrevoke", "--user", ann, "--yes")
    assert settles(server, tokens, 2)
    assert accepted(server, later) == 1

    everyone = sign_in(server, new_email("bob"), 1) + later
    cli(server, "revoke-all", "--yes")
    assert settles(server, everyone, 0)
    assert dry_run(server, "unrevoke", "--all") == ("revive", 2, 4, 4)
    cli(server, "unrevoke", "--all", "--yes")
    assert settles(server, tokens + everyone, 4)


def test_unrevoke_dry_run_is_refused_where_the_undo_is_and_records_nothing(server):
    """Attack: rehearsing an undo past a final cut. The dry run fails as the undo does, with the same message, and
    without the undo's UNREVOKE_REFUSED audit row."""
    ann, bob = new_email("ann"), new_email("bob")
    sign_in(server, ann, 1)
    bob_token = sign_in(server, bob, 1)[0]
    response = requests.post(f"{server.base_url}/api/auth/logout-all", headers={"Authorization": f"Bearer {bob_token}"}, timeout=TIMEOUT)
    assert response.status_code == 204
    cli(server, "users", "deactivate", ann)

    for args in (["--all"], ["--user", bob], ["--user", ann], ["--user", new_email("nobody")]):
        before = stored(server)
        rehearsed = cli(server, "unrevoke", *args, "--dry-run", expect=1)
        assert stored(server) == before, f"{args}: a refused dry run writes nothing"
        real = cli(server, "unrevoke", *args, "--yes", expect=1)
        assert rehearsed.stderr == real.stderr, args
        assert rehearsed.stdout == real.stdout == ""
