"""Outgoing hooks end to end: signed per Standard Webhooks (verified by the library on the receiving
side), delivered at least once through a receiver's outage, exactly once per id in the end."""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest
import stripe
from conftest import STRIPE_KEY, WEBHOOK_SECRET, LiveServer, replace_settings
from receivers import HookReceiver

from domain.clock import utcnow
from domain.hooks import Endpoint
from services.hooks import HookSender, deliver_next
from standins.stripe_api import StripeStandIn

SECRET = "whsec_" + base64.b64encode(b"another-refund-desk-secret-32byt").decode()


@pytest.fixture
def receiver() -> Iterator[HookReceiver]:
    hooks = HookReceiver(SECRET)
    yield hooks
    hooks.close()


@pytest.fixture
def desk(make_server_for, settings, slack, stripe_api: StripeStandIn, receiver: HookReceiver) -> LiveServer:
    web = make_server_for(
        replace_settings(
            settings,
            outgoing_webhooks=(Endpoint(receiver.url, ("refund.*", "payment.*", "dispute.*")),),
            outgoing_webhook_secret=SECRET,
        ),
        slack,
    )
    stripe_api.deliver_webhooks(f"{web.url}/webhooks/stripe", WEBHOOK_SECRET)
    return web


def _stripe(stripe_api: StripeStandIn) -> stripe.StripeClient:
    return stripe.StripeClient(STRIPE_KEY, base_addresses={"api": stripe_api.url})


def _refund(stripe_api: StripeStandIn, payment: dict, amount: int) -> None:
    stripe_api.refund_outcome_for_charge(payment["charge"]["id"], refund_status="succeeded")
    params: dict = {"payment_intent": payment["payment_intent"]["id"], "amount": amount}
    _stripe(stripe_api).v1.refunds.create(params=params)  # type: ignore[arg-type]


def _apply(web: LiveServer, stripe_api: StripeStandIn) -> None:
    stripe_api.flush_webhooks()
    web.drain()


def _send_all(web: LiveServer, *, now=None) -> int:
    sender = HookSender(SECRET)
    n = 0
    while deliver_next(web.deps.pool, sender, web.settings, now=now or utcnow()):
        n += 1
    return n


def test_a_partial_refund_tells_refund_succeeded_a_full_one_also_fully_refunded_once(
    desk: LiveServer, stripe_api: StripeStandIn, receiver: HookReceiver, conn
) -> None:
    payment = stripe_api.add_payment(5000, "usd")
    _apply(desk, stripe_api)
    _refund(stripe_api, payment, 2000)
    _apply(desk, stripe_api)
    _send_all(desk)
    assert receiver.ids_by_type() == {"refund.succeeded": 1}
    _refund(stripe_api, payment, 3000)
    _apply(desk, stripe_api)
    _send_all(desk)
    assert receiver.ids_by_type() == {"refund.succeeded": 2, "payment.fully_refunded": 1}
    [full] = receiver.of_type("payment.fully_refunded")
    data = full["payload"]["data"]
    assert (data["payment"], data["amount_captured"], data["currency"]) == (
        payment["payment_intent"]["id"],
        5000,
        "usd",
    )
    assert len(data["refunds"]) == 2
    # Every event again (a replay, a second worker): nothing new is told.
    conn.execute("UPDATE stripe_events SET status = 'pending', next_attempt_at = now()")
    conn.commit()
    desk.drain()
    assert _send_all(desk) == 0
    assert receiver.refused == []
    assert len(receiver.received) == 3


def test_a_failed_refund_is_told(desk: LiveServer, stripe_api: StripeStandIn, receiver: HookReceiver) -> None:
    payment = stripe_api.add_payment(1200, "eur")
    _apply(desk, stripe_api)
    refund = _stripe(stripe_api).v1.refunds.create(params={"payment_intent": payment["payment_intent"]["id"]})
    stripe_api.settle_refund(refund.id, "failed", "expired_or_canceled_card")
    _apply(desk, stripe_api)
    _send_all(desk)
    [failed] = receiver.of_type("refund.failed")
    assert failed["payload"]["data"]["failure_reason"] == "expired_or_canceled_card"
    assert receiver.of_type("payment.fully_refunded") == []


def test_disputes_opened_and_closed(desk: LiveServer, stripe_api: StripeStandIn, receiver: HookReceiver) -> None:
    payment = stripe_api.add_payment(4516, "usd")
    dispute = stripe_api.add_dispute(payment["charge"]["id"])
    stripe_api.update_dispute(dispute["id"], status="under_review")
    stripe_api.update_dispute(dispute["id"], status="lost")
    _apply(desk, stripe_api)
    _send_all(desk)
    assert receiver.ids_by_type() == {"dispute.opened": 1, "dispute.closed": 1}
    assert receiver.of_type("dispute.closed")[0]["payload"]["data"]["status"] == "lost"


def test_a_receiver_down_for_a_while_gets_every_hook_exactly_once_in_the_end(
    desk: LiveServer, stripe_api: StripeStandIn, receiver: HookReceiver, conn
) -> None:
    payments = [stripe_api.add_payment(1000 + i, "usd") for i in range(3)]
    _apply(desk, stripe_api)
    for p in payments:
        _refund(stripe_api, p, p["payment_intent"]["amount"])
    _apply(desk, stripe_api)
    receiver.down = True
    now = utcnow()
    for _ in range(4):  # four rounds of 503s, each retried later with backoff
        _send_all(desk, now=now)
        now += timedelta(hours=1)
    assert receiver.received == []
    conn.rollback()
    attempts = conn.execute("SELECT min(attempts), max(attempts) FROM webhook_outbox").fetchone()
    assert attempts == (4, 4)
    receiver.down = False
    _send_all(desk, now=now)
    _send_all(desk, now=now + timedelta(hours=1))  # nothing left: each went once
    assert Counter(r["id"] for r in receiver.received).most_common(1)[0][1] == 1
    assert receiver.ids_by_type() == {"refund.succeeded": 3, "payment.fully_refunded": 3}


def test_a_receiver_down_for_good_is_dead_lettered_and_listed(
    desk: LiveServer, stripe_api: StripeStandIn, receiver: HookReceiver, conn
) -> None:
    settings = replace_settings(desk.settings, outgoing_webhook_max_attempts=2)
    payment = stripe_api.add_payment(700, "usd")
    _apply(desk, stripe_api)
    _refund(stripe_api, payment, 100)
    _apply(desk, stripe_api)
    receiver.close()  # connection refused from now on
    sender = HookSender(SECRET)
    now = utcnow()
    for _ in range(3):
        deliver_next(desk.deps.pool, sender, settings, now=now)
        now += timedelta(hours=2)
    conn.rollback()
    assert conn.execute("SELECT status, attempts, last_error FROM webhook_outbox").fetchall() == [
        ("dead", 2, "ConnectionError")
    ]
