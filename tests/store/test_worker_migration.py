"""Migration 0005 gives events already waiting the priority domain/priority.py gives new ones."""

from __future__ import annotations

import psycopg
from conftest import with_database

from domain.priority import ROUTINE, event_priority
from handlers.registry import KNOWN_TYPES
from store import migrate

INSERT = (
    "INSERT INTO stripe_events (id, type, stripe_created, payload, status, next_attempt_at)"
    " VALUES (%s, %s, now(), '{}', %s, now())"
)


def test_upgrading_gives_waiting_events_the_rule_and_leaves_applied_ones_routine(
    pg_server_url: str, db_url: str
) -> None:
    name = "prio_" + db_url.rsplit("/", 1)[1].split("?")[0]
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        old = with_database(pg_server_url, name)
        migrate.migrate(old, upto="0004_refund_drafts")
        types = sorted(KNOWN_TYPES | {"payout.paid", "account.updated", "refunds.future_thing"})
        with psycopg.connect(old) as conn:
            for n, event_type in enumerate(types):
                for status in ("pending", "failed", "dead", "processed"):
                    conn.execute(INSERT, (f"evt_{status}_{n}", event_type, status))
        migrate.migrate(old)
        with psycopg.connect(old) as conn:
            rows = conn.execute("SELECT type, status, priority FROM stripe_events").fetchall()
        for event_type, status, priority in rows:
            expected = ROUTINE if status == "processed" else event_priority(event_type)
            assert priority == expected, (event_type, status)
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
