"""The refund-desk command line: migrate, config, events list / replay / backfill."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from conftest import STRIPE_KEY, replace_settings

from app import build_deps
from cli import main
from domain.clock import utcnow
from handlers.dispatch import process_next
from store import db, events


@pytest.fixture
def run(db_url: str, stripe_api):
    env = {
        "DATABASE_URL": db_url,
        "STRIPE_SECRET_KEY": STRIPE_KEY,
        "STRIPE_API_BASE": stripe_api.url,
        "LOG_LEVEL": "ERROR",
    }

    def invoke(*args: str):
        return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)

    return invoke


def test_migrate_says_the_schema_is_current(run) -> None:
    result = run("migrate")
    assert result.exit_code == 0 and "schema is current" in result.output


def test_config_lists_every_setting_without_values(run) -> None:
    result = run("config")
    assert "SLACK_BOT_TOKEN is not set" in result.output
    assert "STRIPE_SECRET_KEY" in result.output and STRIPE_KEY not in result.output


def test_failed_events_are_listed_retried_dead_lettered_and_replayed(run, settings, conn) -> None:
    broken = {
        "id": "evt_broken1",
        "object": "event",
        "type": "refund.updated",
        "created": 1_790_000_000,
        "livemode": False,
        "data": {"object": {"object": "refund", "amount": 100}},
    }  # no id: the handler fails
    deps = build_deps(replace_settings(settings, webhook_max_attempts=2))
    with db.connection(deps.pool) as c:
        events.record(c, broken, json.dumps(broken))
    now = utcnow()
    assert process_next(deps.pool, deps.settings, now=now) == "evt_broken1"
    status, attempts, due = conn.execute(
        "SELECT status, attempts, next_attempt_at FROM stripe_events WHERE id = 'evt_broken1'"
    ).fetchone()
    assert (status, attempts) == ("failed", 1) and due > now  # kept, with a retry time
    assert process_next(deps.pool, deps.settings, now=now) is None  # not due yet
    assert process_next(deps.pool, deps.settings, now=now + timedelta(hours=2)) == "evt_broken1"
    conn.rollback()
    assert conn.execute("SELECT status FROM stripe_events WHERE id = 'evt_broken1'").fetchone()[0] == "dead"
    deps.pool.close()

    listed = run("events", "list")
    assert "evt_broken1" in listed.output and "dead" in listed.output and "KeyError" in listed.output
    assert run("events", "replay", "--all").output.strip() == "queued 1 event(s) for the worker"
    conn.rollback()
    assert conn.execute("SELECT status, attempts FROM stripe_events WHERE id = 'evt_broken1'").fetchone() == (
        "pending",
        0,
    )
    assert conn.execute("SELECT action, surface FROM audit_log WHERE subject = 'evt_broken1'").fetchone() == (
        "event.replayed",
        "cli",
    )
    missing = run("events", "replay", "evt_nope")
    assert missing.exit_code == 1 and "not a stored event" in missing.output


def test_backfill_stores_what_is_missing_once(run, stripe_api, conn) -> None:
    stripe_api.add_payment(1000, "usd")
    stripe_api.add_payment(2000, "eur")
    since = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    first = run("events", "backfill", "--since", since)
    n = len(stripe_api.events)
    assert first.exit_code == 0 and f"stored {n} new event(s); 0 were already here" in first.output
    second = run("events", "backfill", "--since", since)
    assert f"stored 0 new event(s); {n} were already here" in second.output
    assert conn.execute("SELECT count(*), min(source) FROM stripe_events").fetchone() == (n, "backfill")


def test_backfill_refuses_more_than_30_days(run) -> None:
    result = run("events", "backfill", "--since", "2020-01-01")
    assert result.exit_code == 2 and "30 days" in result.output
