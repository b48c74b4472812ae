from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from support import fixture_json, stripe_fixtures

from domain import stripe_mapping as sm
from domain.models import PaymentView, RequestSummary, refundable

NOW = datetime(2026, 11, 22, tzinfo=UTC)


def _events_of(kind: str) -> list:
    out = []
    for path in stripe_fixtures("event_*.json"):
        event = json.loads(path.read_text())
        if event["data"]["object"].get("object") == kind:
            out.append(pytest.param(event, id=path.stem))
    return out


@pytest.mark.parametrize("event", _events_of("charge"))
def test_charge_events_map_to_payments(event: dict) -> None:
    charge = event["data"]["object"]
    p = sm.payment_from_charge(charge, account=event.get("account"), observed_at=NOW)
    assert p.id == (charge.get("payment_intent") or charge["id"])
    assert p.charge_id == charge["id"]
    assert p.amount == charge["amount"]
    assert p.amount_refunded == charge["amount_refunded"]
    assert p.amount_captured == (charge["amount"] if charge["captured"] else 0)
    assert p.currency == charge["currency"]
    assert p.charge_status == charge["status"]
    if not charge.get("payment_intent"):
        assert p.status == charge["status"]
    elif charge["status"] == "failed":
        assert p.status == "requires_payment_method"  # what the payment intent says after a failed charge
    assert p.stripe_created == datetime.fromtimestamp(charge["created"], UTC)
    if charge["status"] == "failed":
        # The most specific reason first, as for payment intents and failure rates: the issuer's.
        assert p.failure_code == (charge.get("outcome") or {}).get("reason") or charge["failure_code"]


@pytest.mark.parametrize(
    ("charge", "code"),
    [
        (
            {"status": "failed", "failure_code": "card_declined", "outcome": {"reason": "insufficient_funds"}},
            "insufficient_funds",
        ),
        (
            {"status": "failed", "failure_code": "card_declined", "outcome": {"network_status": "declined_by_network"}},
            "card_declined",
        ),
        ({"status": "failed", "outcome": {"network_status": "declined_by_network"}}, "declined_by_network"),
        ({"status": "succeeded", "failure_code": "card_declined"}, None),
        (None, None),
    ],
)
def test_one_decline_code_rule(charge: dict | None, code: str | None) -> None:
    from domain.stripe_mapping import decline_code

    assert decline_code(charge) == code


@pytest.mark.parametrize("event", _events_of("payment_intent"))
def test_payment_intent_events_map_to_payments(event: dict) -> None:
    pi = event["data"]["object"]
    p = sm.payment_from_payment_intent(pi, account=None, observed_at=NOW)
    assert p.id == pi["id"] == p.payment_intent_id
    assert p.status == pi["status"] == "requires_payment_method"
    assert p.amount == pi["amount"]
    assert p.amount_captured == 0
    assert p.failure_message == pi["last_payment_error"]["message"]
    assert p.failure_code in {pi["last_payment_error"].get("decline_code"), pi["last_payment_error"].get("code")}
    # Old API versions embed charges; new ones name latest_charge.
    charge = sm.latest_charge(pi)
    assert p.charge_id == (charge["id"] if charge else sm.ref_id(pi.get("latest_charge")))


@pytest.mark.parametrize("event", _events_of("refund"))
def test_refund_events_map_to_refunds(event: dict) -> None:
    obj = event["data"]["object"]
    r = sm.refund_from_stripe(obj, account=None, observed_at=NOW)
    assert (r.id, r.amount, r.currency, r.status) == (obj["id"], obj["amount"], obj["currency"], obj["status"])
    assert r.charge_id == obj["charge"]
    assert r.failure_reason == obj.get("failure_reason")


@pytest.mark.parametrize("event", _events_of("dispute"))
def test_dispute_events_map_to_disputes(event: dict) -> None:
    obj = event["data"]["object"]
    d = sm.dispute_from_stripe(obj, account=None, observed_at=NOW)
    assert (d.id, d.amount, d.status, d.reason) == (obj["id"], obj["amount"], obj["status"], obj["reason"])
    assert d.evidence_due_by == datetime.fromtimestamp(obj["evidence_details"]["due_by"], UTC)


@pytest.mark.parametrize(
    "name",
    [
        "object_charge__djstripe.json",
        "object_charge__openapi-fixtures3.json",
        "object_charge__gumroad_vcr_destination_partially_refunded.json",
        "object_charge__gumroad_vcr_destination_fully_refunded.json",
        "object_charge__gumroad_vcr_connected_account_py_cad_fx.json",
    ],
)
def test_api_charges_map(name: str) -> None:
    charge = fixture_json(f"stripe/{name}")
    p = sm.payment_from_charge(charge, account=None, observed_at=NOW)
    assert p.amount_refunded <= p.amount_captured <= p.amount
    assert p.currency == charge["currency"]
    last4 = (charge.get("payment_method_details") or {}).get("card", {}).get("last4")
    if last4:
        assert p.card_last4 == last4


def test_partially_refunded_destination_charge_leaves_the_rest_refundable() -> None:
    charge = fixture_json("stripe/object_charge__gumroad_vcr_destination_partially_refunded.json")
    p = sm.payment_from_charge(charge, account=None, observed_at=NOW)
    assert (p.amount_captured, p.amount_refunded) == (charge["amount"], 200)
    assert refundable(PaymentView(p)) == charge["amount"] - 200


def test_payment_intent_with_expanded_latest_charge() -> None:
    pi = fixture_json("stripe/object_payment_intent__openapi-fixtures3.json")
    charge = fixture_json("stripe/object_charge__openapi-fixtures3.json")
    p = sm.payment_from_payment_intent({**pi, "latest_charge": charge}, account="acct_1", observed_at=NOW)
    assert p.charge_id == charge["id"]
    assert p.account == "acct_1"


def test_refundable_counts_pending_succeeded_and_approved_unsent() -> None:
    charge = fixture_json("stripe/object_charge__gumroad_vcr_destination_partially_refunded.json")
    p = sm.payment_from_charge(charge, account=None, observed_at=NOW)
    approved = RequestSummary(1, 300, p.currency, "approved", "U1", None)
    pending_request = RequestSummary(2, 100, p.currency, "pending", "U1", None)
    view = PaymentView(p, requests=(approved, pending_request))
    # Pending requests do not hold money back; approved ones do.
    assert refundable(view) == charge["amount"] - 200 - 300
