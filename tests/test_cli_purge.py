"""`refund-desk events purge`: dead-lettered events go for good, on purpose, audited; nothing else goes."""

from __future__ import annotations

import json

import psycopg
import pytest
from click.testing import CliRunner

from cli import main
from store import events

DEAD = {"object": "event", "type": "refund.updated", "created": 1_790_000_000, "data": {"object": {}}}


@pytest.fixture
def run(db_url: str):
    def invoke(*args: str):
        return CliRunner().invoke(main, list(args), env={"DATABASE_URL": db_url, "LOG_LEVEL": "ERROR"})

    return invoke


def _store(conn: psycopg.Connection, event_id: str, status: str) -> None:
    events.record(conn, {**DEAD, "id": event_id}, json.dumps({**DEAD, "id": event_id}))
    conn.execute("UPDATE stripe_events SET status = %s WHERE id = %s", (status, event_id))
    conn.commit()


def test_purging_named_dead_events_keeps_everything_else(run, conn: psycopg.Connection) -> None:
    for event_id, status in (("evt_dead1", "dead"), ("evt_dead2", "dead"), ("evt_pending", "pending")):
        _store(conn, event_id, status)
    result = run("events", "purge", "evt_dead1", "evt_pending", "--yes")
    assert result.exit_code == 1
    assert "deleted 1 dead-lettered event(s)" in result.output and "so kept: evt_pending" in result.output
    conn.rollback()
    assert {r[0] for r in conn.execute("SELECT id FROM stripe_events")} == {"evt_dead2", "evt_pending"}
    audit = conn.execute("SELECT action, subject, surface FROM audit_log").fetchall()
    assert audit == [("event.purged", "evt_dead1", "cli")]


def test_purging_every_dead_event_asks_first(run, conn: psycopg.Connection) -> None:
    for n in range(3):
        _store(conn, f"evt_dead{n}", "dead")
    _store(conn, "evt_done", "processed")
    assert run("events", "purge", "--all-dead").exit_code == 1  # no confirmation on stdin: aborted
    conn.rollback()
    assert conn.execute("SELECT count(*) FROM stripe_events").fetchone() == (4,)
    result = run("events", "purge", "--all-dead", "--yes")
    assert result.exit_code == 0 and "deleted 3 dead-lettered event(s)" in result.output
    conn.rollback()
    assert [r[0] for r in conn.execute("SELECT id FROM stripe_events")] == ["evt_done"]


def test_purge_needs_ids_or_all_dead(run) -> None:
    assert run("events", "purge").exit_code == 2
    assert run("events", "purge", "evt_1", "--all-dead").exit_code == 2
