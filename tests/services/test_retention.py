"""Retention: processed and ignored events older than EVENT_RETENTION_DAYS and delivered messages older
than 30 days go, exactly at the boundaries; dead letters, the audit log and what lookups show stay;
a thread whose parent message was pruned still grows under it."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from conftest import LiveServer
from freezegun import freeze_time
from support import fixture_json, replies, top_level

from domain.clock import utcnow
from domain.retention import cutoffs, expired
from services import retention
from store import db, outbox
from store import payments as store

NOW = datetime(2027, 6, 1, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
LOST = fixture_json("stripe/event_charge.dispute.closed__lago_2020-08-27_lost.json")
REFUNDED = fixture_json("stripe/event_charge.refunded__stripe-ruby-mock.json")
FAILED_PI = fixture_json("stripe/event_payment_intent.payment_failed__lago_basil.json")


@pytest.mark.parametrize(
    ("age", "gone"),
    [(timedelta(days=90) + SECOND, True), (timedelta(days=90), False), (timedelta(days=89), False)],
)
def test_events_older_than_the_retention_go_and_the_boundary_stays(age: timedelta, gone: bool) -> None:
    assert expired(NOW - age, cutoffs(NOW, 90).events) is gone


@pytest.mark.parametrize(
    ("age", "gone"),
    [(timedelta(days=30) + SECOND, True), (timedelta(days=30), False), (timedelta(days=1), False)],
)
def test_delivered_messages_go_after_30_days(age: timedelta, gone: bool) -> None:
    assert expired(NOW - age, cutoffs(NOW, 90).messages) is gone


def _event(base: dict, event_id: str, event_type: str, **changes) -> dict:
    event = copy.deepcopy(base)
    event.update(id=event_id, type=event_type)
    event["data"]["object"].update(changes)
    return event


def _age_events(conn: psycopg.Connection, ages: dict[str, tuple[str, datetime, datetime | None]]) -> None:
    """Give events a status and times: received (and created) at, processed at."""
    for event_id, (status, received, processed) in ages.items():
        conn.execute(
            "UPDATE stripe_events SET status = %s, received_at = %s, stripe_created = %s, processed_at = %s,"
            " next_attempt_at = CASE WHEN %s IN ('pending', 'failed') THEN %s END WHERE id = %s",
            (status, received, received, processed, status, received, event_id),
        )
    conn.commit()


def _lookups(conn: psycopg.Connection, ids: list[str]) -> list:
    conn.rollback()
    return [store.find_view(conn, i) for i in ids]


def test_retention_removes_exactly_what_it_should_and_lookups_do_not_change(
    web: LiveServer, conn: psycopg.Connection
) -> None:
    created = _event(LOST, "evt_created", "charge.dispute.created", status="needs_response")
    others = [_event(REFUNDED, f"evt_refunded_{n}", "charge.refunded") for n in range(4)]  # the same charge, four times
    failed = _event(FAILED_PI, "evt_pi_failed", "payment_intent.payment_failed")
    unknown = _event(FAILED_PI, "evt_ignored", "payment_intent.created")  # stored, no handler: ignored
    for event in (created, *others, failed, unknown):
        assert web.webhook(event).status_code == 200
    web.drain()
    web.deliver()
    dispute = LOST["data"]["object"]
    ids = [
        dispute["id"],
        dispute["charge"],
        dispute["payment_intent"],
        REFUNDED["data"]["object"]["id"],
        "re_000000000000000000000000",
    ]
    ids.append(FAILED_PI["data"]["object"]["id"])
    before = _lookups(conn, ids)
    assert all(view is not None for view in before[3:])  # (the dispute's payment was never sent)

    cut = cutoffs(NOW, web.settings.event_retention_days)
    _age_events(
        conn,
        {
            "evt_created": ("processed", cut.events - SECOND, cut.events - SECOND),  # gone
            "evt_refunded_0": ("processed", cut.events, cut.events),  # exactly at the cut-off: kept
            "evt_refunded_1": ("dead", cut.events - timedelta(days=400), None),  # dead letters stay
            "evt_refunded_2": ("failed", cut.events - timedelta(days=1), None),  # still to be applied
            "evt_refunded_3": ("processed", cut.events - timedelta(days=1), NOW - timedelta(days=1)),  # replayed lately
            "evt_pi_failed": ("processed", NOW - timedelta(days=1), NOW - timedelta(days=1)),  # recent
            "evt_ignored": ("ignored", cut.events - timedelta(days=2), cut.events - timedelta(days=2)),  # gone
        },
    )
    alert_key = f"dispute:{dispute['id']}"
    conn.execute("UPDATE slack_outbox SET sent_at = %s WHERE status = 'sent'", (NOW - timedelta(days=1),))
    conn.execute("UPDATE slack_outbox SET sent_at = %s WHERE message_key = %s", (cut.messages - SECOND, alert_key))
    with db.transaction(web.deps.pool) as c:
        outbox.enqueue(c, channel="C0ALERTS", payload={"text": "exactly 30 days"}, message_key="boundary")
        outbox.enqueue(c, channel="C0ALERTS", payload={"text": "old, dead", "blocks": [{}]}, message_key="dead")
    conn.execute(
        "UPDATE slack_outbox SET status = 'sent', sent_at = %s WHERE message_key = 'boundary'", (cut.messages,)
    )
    conn.execute(
        "UPDATE slack_outbox SET status = 'dead', created_at = %s WHERE message_key = 'dead'",
        (cut.messages - timedelta(days=9),),
    )
    conn.commit()
    audit_before = conn.execute("SELECT count(*), max(id) FROM audit_log").fetchone()
    messages_before = conn.execute("SELECT count(*) FROM slack_outbox").fetchone()[0]

    with freeze_time(NOW):
        pruned = retention.prune(web.deps.pool, web.settings, now=utcnow(), batch=2)
    assert (pruned.events, pruned.messages, pruned.more) == (2, 1, False)

    conn.rollback()
    left = dict(conn.execute("SELECT id, status FROM stripe_events").fetchall())
    assert set(left) == {"evt_refunded_0", "evt_refunded_1", "evt_refunded_2", "evt_refunded_3", "evt_pi_failed"}
    assert conn.execute("SELECT count(*) FROM slack_outbox").fetchone()[0] == messages_before - 1
    assert conn.execute("SELECT 1 FROM slack_outbox WHERE message_key = %s", (alert_key,)).fetchone() is None
    assert conn.execute("SELECT status FROM slack_outbox WHERE message_key = 'boundary'").fetchone() == ("sent",)
    assert conn.execute("SELECT count(*), max(id) FROM audit_log").fetchone() == audit_before  # never pruned
    assert _lookups(conn, ids) == before
    assert outbox.exists(conn, alert_key)  # its ts is kept: the alert is not posted again

    # Months later the dispute closes: its alert is updated in place and its thread told, as ever.
    assert web.webhook(LOST).status_code == 200
    web.drain()
    web.deliver()
    channel = web.slack.messages["C0DISPUTES"]
    [alert] = top_level(channel)
    assert "lost" in str(alert["blocks"]) and [r["text"] for r in replies(channel, alert)] == [
        "Closed: 🚨 needs response → 💸 lost"
    ]


def test_a_round_with_more_to_do_says_so(web: LiveServer, conn: psycopg.Connection) -> None:
    for n in range(5):
        assert web.webhook(_event(FAILED_PI, f"evt_old_{n}", "payment_intent.created")).status_code == 200
    web.drain()
    old = NOW - timedelta(days=200)
    conn.execute("UPDATE stripe_events SET received_at = %s, stripe_created = %s, processed_at = %s", (old, old, old))
    conn.commit()
    with freeze_time(NOW):
        first = retention.prune(web.deps.pool, web.settings, now=utcnow(), batch=2, rounds=2)
        second = retention.prune(web.deps.pool, web.settings, now=utcnow(), batch=2, rounds=2)
    assert (first.events, first.more) == (4, True)
    assert (second.events, second.more) == (1, False)
