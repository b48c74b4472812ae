"""`refund-desk api-keys create | list | revoke`: the key printed once, only its hash kept, audited."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from cli import main
from services.api_keys import hash_key


@pytest.fixture
def env(db_url: str) -> dict[str, str]:
    return {"DATABASE_URL": db_url, "LOG_LEVEL": "ERROR", "USER": "ops-engineer"}


@pytest.fixture
def run(env: dict[str, str]):
    def invoke(*args: str):
        return CliRunner().invoke(main, list(args), env=env)

    return invoke


def test_create_prints_the_key_once_on_its_last_line_and_keeps_only_its_hash(run, conn) -> None:
    made = run("api-keys", "create", "--name", "crm", "--scopes", "read,request")
    assert made.exit_code == 0, made.output
    key = made.output.strip().splitlines()[-1]
    assert key.startswith("rdk_") and len(key) > 40
    stored = conn.execute("SELECT name, key_hash, prefix, scopes, created_by FROM api_keys").fetchall()
    assert stored == [("crm", hash_key(key), key[:10], ["read", "request"], "ops-engineer")]
    assert key not in str(conn.execute("SELECT * FROM api_keys").fetchall())
    assert conn.execute("SELECT actor, surface, action FROM audit_log").fetchall() == [
        ("ops-engineer", "cli", "api_key.created")
    ]
    listed = run("api-keys", "list")
    assert "crm" in listed.output and key[:10] in listed.output and "live" in listed.output and key not in listed.output


def test_names_are_unique_among_live_keys_and_revoking_frees_them(run) -> None:
    assert run("api-keys", "create", "--name", "crm").exit_code == 0
    again = run("api-keys", "create", "--name", "crm")
    assert again.exit_code != 0 and "already named" in again.output
    revoked = run("api-keys", "revoke", "crm")
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    assert "revoked" in run("api-keys", "list").output
    assert run("api-keys", "create", "--name", "crm").exit_code == 0


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--name", "CRM!"], "lowercase"),
        (["--name", "crm", "--scopes", "write"], "Scopes are read and request"),
        (["--name", "crm", "--scopes", ""], "Scopes are"),
    ],
)
def test_bad_names_and_scopes_are_refused(run, args: list[str], says: str) -> None:
    result = run("api-keys", "create", *args)
    assert result.exit_code != 0 and says in result.output


def test_revoking_a_key_nobody_has_is_an_error(run) -> None:
    result = run("api-keys", "revoke", "ghost")
    assert result.exit_code != 0 and "no live API key" in result.output
