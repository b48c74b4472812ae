from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
from support import fixture_json

from domain import stripe_mapping as sm
from store import payments as store

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def test_view_gathers_refunds_and_disputes_by_any_id(conn: psycopg.Connection) -> None:
    charge = fixture_json("stripe/object_charge__gumroad_vcr_destination_partially_refunded.json")
    refund = fixture_json("stripe/object_refund__gumroad_vcr_partial_expanded_bt.json")
    payment = sm.payment_from_charge(charge, account=None, observed_at=T0)
    assert store.save_payment(conn, payment).changed
    store.save_refund(conn, sm.refund_from_stripe({**refund, "charge": charge["id"]}, account=None, observed_at=T0))
    dispute = sm.dispute_from_stripe(
        {
            **fixture_json("stripe/object_dispute__openapi-fixtures3.json"),
            "charge": charge["id"],
            "payment_intent": charge.get("payment_intent"),
        },
        account=None,
        observed_at=T0,
    )
    store.save_dispute(conn, dispute)

    for key in (payment.id, charge["id"], refund["id"], dispute.id):
        view = store.find_view(conn, key)
        assert view is not None, key
        assert view.payment.id == payment.id
        assert [r.id for r in view.refunds] == [refund["id"]]
        assert [d.id for d in view.disputes] == [dispute.id]
        assert view.focus == (key if key in (refund["id"], dispute.id) else None)


def test_unknown_ids_are_not_found(conn: psycopg.Connection) -> None:
    assert store.find_view(conn, "pi_unknown") is None
    assert store.find_view(conn, "re_unknown") is None
    assert store.find_view(conn, "dp_unknown") is None


def test_an_older_snapshot_changes_nothing(conn: psycopg.Connection) -> None:
    charge = fixture_json("stripe/object_charge__gumroad_vcr_destination_fully_refunded.json")
    newer = sm.payment_from_charge(charge, account=None, observed_at=T0 + timedelta(seconds=10))
    older = sm.payment_from_charge({**charge, "amount_refunded": 200, "refunded": False}, account=None, observed_at=T0)
    store.save_payment(conn, newer)
    saved = store.save_payment(conn, older)
    assert not saved.changed
    assert store.find_view(conn, charge["id"]).payment.amount_refunded == charge["amount_refunded"]
