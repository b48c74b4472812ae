"""Least privilege: a key without Disputes: Read still looks payments up, and says what it could not read."""

from __future__ import annotations

import json

import stripe
from conftest import STRIPE_KEY, WEBHOOK_SECRET, LiveServer

from standins.stripe_api import StripeStandIn


def _seed(stripe_api: StripeStandIn) -> dict:
    payment = stripe_api.add_payment(5000, "usd")
    stripe_api.refund_outcome_for_charge(payment["charge"]["id"], refund_status="succeeded")
    client = stripe.StripeClient(STRIPE_KEY, base_addresses={"api": stripe_api.url})
    client.v1.refunds.create(params={"payment_intent": payment["payment_intent"]["id"], "amount": 1200})
    stripe_api.add_dispute(payment["charge"]["id"], amount=1000)
    return payment


def test_a_lookup_shows_what_it_could_read_and_names_the_missing_permission(
    web: LiveServer, stripe_api: StripeStandIn
) -> None:
    pi = _seed(stripe_api)["payment_intent"]["id"]
    stripe_api.deny("/v1/disputes", "rak_dispute_read")
    _, key = web.slash(pi)
    web.slack.wait_for(lambda calls: any(c.key == key for c in calls), timeout=15)
    answer = web.slack.responses(key)[-1]
    shown = json.dumps(answer, ensure_ascii=False)
    assert answer["text"].startswith(f"{pi}: $50.00 succeeded, refundable $38.00")
    assert "*Refunds*" in shown and "$12.00" in shown and "*Disputes*" not in shown
    assert "⚠️ Could not read disputes (the Stripe key lacks *Disputes: Read*)." in shown
    denied = [r for r in stripe_api.requests if r["path"] == "/v1/disputes"]
    assert [r["status"] for r in denied] == [403]


def test_with_every_permission_the_disputes_are_shown(web: LiveServer, stripe_api: StripeStandIn) -> None:
    pi = _seed(stripe_api)["payment_intent"]["id"]
    _, key = web.slash(pi)
    web.slack.wait_for(lambda calls: any(c.key == key for c in calls), timeout=15)
    shown = json.dumps(web.slack.responses(key)[-1], ensure_ascii=False)
    assert "*Disputes*" in shown and "Could not read" not in shown


def test_a_refund_request_refused_for_a_missing_permission_names_it(web: LiveServer, stripe_api: StripeStandIn) -> None:
    stripe_api.deliver_webhooks(f"{web.url}/webhooks/stripe", WEBHOOK_SECRET)
    pi = stripe_api.add_payment(900, "usd")["payment_intent"]["id"]
    stripe_api.deny("/v1/payment_intents", "rak_payment_intent_read")
    _, key = web.slash(f"request {pi} all", user_id="U0SUPPORT1")
    web.slack.wait_for(lambda calls: any(c.key == key for c in calls), timeout=15)
    assert "lacks *PaymentIntents: Read*" in web.slack.responses(key)[-1]["text"]
