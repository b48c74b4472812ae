"""Ordered SQL migrations in store/migrations/, applied once each, under an advisory lock."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources

import psycopg

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same for every process that migrates.
_LOCK_ID = 0x5EFD_0001

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class Migration:
    """One .sql file; its version is the file name without the extension."""

    version: str
    sql: str


def available() -> list[Migration]:
    """Every migration shipped with the code, in order."""
    folder = resources.files("store") / "migrations"
    files = sorted(f for f in folder.iterdir() if f.name.endswith(".sql"))
    return [Migration(f.name.removesuffix(".sql"), f.read_text(encoding="utf-8")) for f in files]


def applied(conn: psycopg.Connection) -> set[str]:
    """Versions already applied; empty when the ledger does not exist yet."""
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return set()
    return {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}


def pending(conn: psycopg.Connection) -> list[str]:
    """Versions shipped but not applied (empty: the schema is current)."""
    done = applied(conn)
    return [m.version for m in available() if m.version not in done]


def migrate(conninfo: str, *, upto: str | None = None) -> list[str]:
    """Apply what is missing (up to and including `upto`), each file in its own transaction."""
    done_now: list[str] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        # Several processes may start at once (release phase, workers); one migrates.
        conn.execute("SELECT pg_advisory_lock(%(id)s)", {"id": _LOCK_ID})
        try:
            conn.execute(_CREATE_LEDGER)
            done = applied(conn)
            for migration in available():
                if upto is not None and migration.version > upto:
                    break
                if migration.version in done:
                    continue
                with conn.transaction():
                    conn.execute(migration.sql.encode())
                    conn.execute(
                        "INSERT INTO schema_migrations (version) VALUES (%(v)s)",
                        {"v": migration.version},
                    )
                log.info("applied migration %s", migration.version)
                done_now.append(migration.version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%(id)s)", {"id": _LOCK_ID})
    return done_now
