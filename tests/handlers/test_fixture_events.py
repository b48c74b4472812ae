"""Every real event in tests/fixtures/stripe is accepted over HTTP and applied as its object says."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from conftest import LiveServer
from support import stripe_fixtures

from store import audit
from store import payments as store

EVENT_FILES = stripe_fixtures("event_*.json")
# Every object kind in the fixtures has a handler now (payouts: reconciliation and failure alerts).
UNHANDLED_OBJECTS: set[str] = set()


@pytest.mark.parametrize("path", EVENT_FILES, ids=[p.stem for p in EVENT_FILES])
def test_fixture_event_is_accepted_and_applied(web: LiveServer, conn, path) -> None:
    event = json.loads(path.read_text())
    obj = event["data"]["object"]
    resp = web.webhook(path.read_bytes())
    assert resp.status_code == 200, resp.text
    assert web.drain() == 1
    status = conn.execute("SELECT status, last_error FROM stripe_events WHERE id = %s", (event["id"],)).fetchone()
    kind = obj.get("object")
    if kind in UNHANDLED_OBJECTS:
        assert status == ("ignored", None)  # stored and visible; nothing here uses them yet
        return
    assert status == ("processed", None)
    if kind in {"account", "application"}:  # Connect: the account as Stripe last said
        row = conn.execute(
            "SELECT charges_enabled, payouts_enabled, connected FROM connected_accounts WHERE id = %s",
            (event["account"],),
        ).fetchone()
        if kind == "account":
            assert row == (obj["charges_enabled"], obj["payouts_enabled"], True)
        else:
            assert row[2] is (event["type"] == "account.application.authorized")
        return
    if kind == "payout":  # kept for reconciliation; a paid automatic one waits for the worker to sum it
        row = conn.execute(
            "SELECT amount, currency, status, failure_code, account, reconcile_due_at IS NOT NULL FROM payouts"
            " WHERE id = %s",
            (obj["id"],),
        ).fetchone()
        due = obj["status"] == "paid" and obj["automatic"]  # Stripe lists what only automatic payouts paid out
        assert row == (obj["amount"], obj["currency"], obj["status"], obj["failure_code"], event.get("account"), due)
    if kind == "charge":
        view = store.find_view(conn, obj["id"])
        p = view.payment
        assert (p.charge_id, p.amount, p.amount_refunded, p.currency) == (
            obj["id"],
            obj["amount"],
            obj["amount_refunded"],
            obj["currency"],
        )
        assert p.charge_status == obj["status"]
        assert p.account == event.get("account")
    elif kind == "payment_intent":
        p = store.find_view(conn, obj["id"]).payment
        assert (p.status, p.amount, p.currency) == (obj["status"], obj["amount"], obj["currency"])
        assert p.failure_message == obj["last_payment_error"]["message"]
    elif kind == "refund":
        row = conn.execute(
            "SELECT amount, currency, status, failure_reason, charge_id, observed_at FROM refunds WHERE id = %s",
            (obj["id"],),
        ).fetchone()
        assert row[:5] == (obj["amount"], obj["currency"], obj["status"], obj.get("failure_reason"), obj["charge"])
        assert row[5] == datetime.fromtimestamp(event["created"], UTC)
    elif kind == "radar.early_fraud_warning":
        row = conn.execute(
            "SELECT fraud_type, actionable, charge_id FROM early_fraud_warnings WHERE id = %s", (obj["id"],)
        ).fetchone()
        assert row == (obj["fraud_type"], obj["actionable"], obj["charge"])
        return
    elif kind == "dispute":
        row = conn.execute(
            "SELECT amount, status, reason, charge_id FROM disputes WHERE id = %s", (obj["id"],)
        ).fetchone()
        assert row == (obj["amount"], obj["status"], obj["reason"], obj["charge"])
    subject = obj["id"] if kind != "payment_intent" else obj["id"]
    records = audit.for_subject(conn, subject if kind != "charge" else (obj.get("payment_intent") or obj["id"]))
    assert len(records) == 1 and event["id"] in records[0].stripe_ids


def test_replaying_every_fixture_twice_changes_nothing_the_second_time(web: LiveServer, conn) -> None:
    for path in EVENT_FILES:
        assert web.webhook(path.read_bytes()).status_code == 200
    web.drain()
    before = _snapshot(conn)
    conn.execute("UPDATE stripe_events SET status = 'pending', next_attempt_at = now()")
    conn.commit()
    assert web.drain() == len({json.loads(p.read_text())["id"] for p in EVENT_FILES})
    assert _snapshot(conn) == before  # no row changed, no audit record added


def _snapshot(conn) -> tuple:
    return tuple(
        conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()  # noqa: S608 - fixed table names
        for table in ("payments", "refunds", "disputes", "payouts", "audit_log")
    )
