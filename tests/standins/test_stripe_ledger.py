"""The Stripe stand-in's ledger: balance transactions and payouts in Stripe's shapes, paged like Stripe."""

from __future__ import annotations

import time

import pytest
import stripe
from conftest import STRIPE_KEY
from support import fixture_json

DAY = (int(time.time()) // 86400 - 5) * 86400


@pytest.fixture
def client(stripe_api) -> stripe.StripeClient:
    return stripe.StripeClient(STRIPE_KEY, base_addresses={"api": stripe_api.url})


def _all(client, **params) -> list[dict]:
    page = client.v1.balance_transactions.list(params={"limit": 3, **params})  # small pages: many cursors
    return [t.to_dict() for t in page.auto_paging_iter()]


def test_every_balance_transaction_kind_in_stripes_shape(stripe_api, client) -> None:
    stripe_api.set_clock(DAY + 100)
    charge = stripe_api.add_payment(10000)["charge"]
    other = stripe_api.add_payment(5000)["charge"]
    refund = client.v1.refunds.create(params={"charge": charge["id"], "amount": 3000}).to_dict()
    stripe_api.settle_refund(refund["id"], "failed", "expired_or_canceled_card")
    stripe_api.add_dispute(other["id"], status="won")
    stripe_api.add_fee(150)
    txns = _all(client)
    kinds = sorted((t["type"], t["reporting_category"]) for t in txns)
    assert kinds == [
        ("adjustment", "dispute"),
        ("adjustment", "dispute_reversal"),
        ("charge", "charge"),
        ("charge", "charge"),
        ("refund", "refund"),
        ("refund_failure", "refund_failure"),
        ("stripe_fee", "fee"),
    ]
    real = set(fixture_json("stripe/object_balance_transaction__openapi-fixtures3.json"))
    assert all(real <= set(t) for t in txns)  # every field the real object has
    assert all(t["net"] == t["amount"] - t["fee"] and t["created"] == DAY + 100 for t in txns)


def test_pages_are_newest_first_and_filters_bound_them(stripe_api, client) -> None:
    for offset in (0, 10, 86400 - 1, 86400, 2 * 86400):
        stripe_api.set_clock(DAY + offset)
        stripe_api.add_payment(1000 + offset % 1000)
    everything = _all(client)
    assert [t["created"] for t in everything] == sorted((t["created"] for t in everything), reverse=True)
    day = _all(client, created={"gte": DAY, "lt": DAY + 86400})
    assert {t["created"] - DAY for t in day} == {0, 10, 86400 - 1}
    assert len({t["id"] for t in everything}) == len(everything) == 5
    assert _all(client, created={"gt": DAY + 86400}) == [everything[0]]


def test_a_payout_sweeps_the_available_balance_and_lists_what_it_paid_out(stripe_api, client) -> None:
    stripe_api.set_clock(DAY)
    early = [stripe_api.add_payment(amount)["charge"] for amount in (4000, 6000)]
    stripe_api.set_clock(DAY + 3 * 86400)
    stripe_api.add_payment(9999)  # not available yet: stays for the next payout
    payout = stripe_api.add_payout("usd")
    swept = [client.v1.balance_transactions.retrieve(c["balance_transaction"]).to_dict() for c in early]
    assert payout["amount"] == sum(t["net"] for t in swept) and payout["status"] == "paid"
    contents = _all(client, payout=payout["id"])
    assert sorted(t["type"] for t in contents) == ["charge", "charge", "payout"]
    assert sum(t["net"] for t in contents) == 0  # what came in, paid out
    assert set(fixture_json("stripe/object_payout__openapi-fixtures3.json")) - set(payout) <= {"payout_method"}
    assert client.v1.payouts.retrieve(payout["id"]).to_dict() == payout
    assert [e["type"] for e in stripe_api.events[-2:]] == ["payout.created", "payout.paid"]
    with pytest.raises(ValueError, match="nothing to pay out"):
        stripe_api.add_payout("usd")


def test_a_failed_payout_returns_its_money(stripe_api, client) -> None:
    stripe_api.set_clock(DAY)
    stripe_api.add_payment(4000)
    stripe_api.set_clock(DAY + 3 * 86400)
    payout = stripe_api.add_payout("usd", status="failed", failure_code="no_account")
    failure = client.v1.balance_transactions.retrieve(payout["failure_balance_transaction"]).to_dict()
    assert (failure["type"], failure["amount"]) == ("payout_failure", payout["amount"])
    event = stripe_api.events[-1]
    real = fixture_json("stripe/event_payout.failed__gitpay_connect_livemode.json")
    assert event["type"] == "payout.failed" and set(real["data"]["object"]) <= set(event["data"]["object"])


def test_a_source_is_expanded_and_a_lost_webhook_is_still_listed(stripe_api, client) -> None:
    charge = stripe_api.add_payment(1000)["charge"]
    txn = client.v1.balance_transactions.retrieve(charge["balance_transaction"], params={"expand": ["source"]})
    assert txn.source.id == charge["id"]
    stripe_api.stop_webhooks()
    stripe_api.add_payment(2000)
    assert stripe_api.events[-1]["type"] == "payment_intent.succeeded"  # kept for GET /v1/events
