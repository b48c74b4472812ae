"""`/refunds` lookups over real HTTP, signed like Slack, against the Stripe stand-in."""

from __future__ import annotations

import json
import time

import pytest
from conftest import LiveServer

from standins.slack_api import SlackStandIn
from standins.stripe_api import StripeStandIn


def _text(message: dict) -> str:
    """Everything a person would read in a message."""
    return json.dumps(message, ensure_ascii=False)


def _answer(web: LiveServer, slack: SlackStandIn, text: str, **kw) -> tuple[dict, dict | None]:
    """The ack body and, when the lookup went to Stripe, the response_url message."""
    resp, key = web.slash(text, **kw)
    assert resp.status_code == 200, resp.text
    ack = resp.json()
    if "Looking up" not in ack.get("text", ""):
        return ack, None
    slack.wait_for(lambda calls: any(c.key == key for c in calls), timeout=15)
    return ack, slack.responses(key)[-1]


def test_payment_not_stored_is_fetched_from_stripe_then_answered_from_the_store(
    web: LiveServer, slack: SlackStandIn, stripe_api: StripeStandIn
) -> None:
    seeded = stripe_api.add_payment(12000, "usd", email="jenny.rosen@example.com", last4="4242")
    pi = seeded["payment_intent"]["id"]
    r1 = _refund(stripe_api, seeded["charge"]["id"], 2000)
    stripe_api.settle_refund(r1, "succeeded")

    ack, later = _answer(web, slack, pi)
    assert ack["response_type"] == "ephemeral"
    assert later is not None, "a payment we never saw is fetched from Stripe after the ack"
    shown = _text(later)
    assert later["replace_original"] is True
    for expected in (
        "$120.00",
        "$20.00",
        "$100.00",
        "jenny.rosen@example.com",
        "•••• 4242",
        r1,
        "succeeded",
        f"https://dashboard.stripe.com/test/payments/{pi}",
    ):
        assert expected in shown, expected
    assert "Refundable now*\\n$100.00" in shown

    # Now cached: the answer comes in the ack itself, without calling Stripe.
    stripe_calls = len(stripe_api.requests)
    ack, later = _answer(web, slack, pi)
    assert later is None
    assert "$100.00" in _text(ack) and r1 in _text(ack)
    assert len(stripe_api.requests) == stripe_calls


@pytest.mark.parametrize(
    ("amount", "currency", "shown", "refundable"),
    [(5000, "jpy", "¥5,000", "¥4,000"), (5120, "kwd", "5.120 KWD", "4.120 KWD")],
)
def test_zero_and_three_decimal_currencies(web, slack, stripe_api, amount, currency, shown, refundable) -> None:
    seeded = stripe_api.add_payment(amount, currency)
    _refund(stripe_api, seeded["charge"]["id"], 1000)
    _, later = _answer(web, slack, seeded["charge"]["id"])
    assert shown in _text(later)
    assert f"Refundable now*\\n{refundable}" in _text(later)


def test_refund_id_shows_its_payment_with_the_refund_marked(web, slack, stripe_api) -> None:
    seeded = stripe_api.add_payment(3000, "eur")
    r1 = _refund(stripe_api, seeded["charge"]["id"], 1000)
    _, later = _answer(web, slack, r1)
    shown = _text(later)
    assert f"👉 `{r1}`" in shown and "€30.00" in shown
    # The refund is cached too: the next lookup by refund id answers in the ack.
    ack, later = _answer(web, slack, r1)
    assert later is None and f"👉 `{r1}`" in _text(ack)


def test_legacy_charge_without_payment_intent(web, slack, stripe_api) -> None:
    seeded = stripe_api.add_payment(2500, "gbp", payment_intent=False)
    _, later = _answer(web, slack, seeded["charge"]["id"])
    assert "Charge £25.00" in _text(later)


def test_connected_account_payment_links_to_the_account_dashboard(web, slack, conn) -> None:
    from datetime import UTC, datetime

    from support import fixture_json

    from domain import stripe_mapping as sm
    from store import payments as store

    charge = fixture_json("stripe/object_charge__gumroad_vcr_connected_account_py_cad_fx.json")
    store.save_payment(conn, sm.payment_from_charge(charge, account="acct_1Connected", observed_at=datetime.now(UTC)))
    conn.commit()
    ack, later = _answer(web, slack, charge["id"])
    assert later is None
    assert f"https://dashboard.stripe.com/acct_1Connected/test/payments/{charge['id']}" in _text(ack)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "Look up a payment"),
        ("help", "Look up a payment"),
        ("pi_12", "is not a payment, refund or dispute id"),
        ("x" * 4000, "don't understand"),
        ("💸🙏 refund pls", "don't understand"),
        ("pi_3MtwBwLkdIwHu7ix28a3tqPa now please", "Just the id"),
    ],
)
def test_help_and_bad_input_answer_with_usage(web, slack, stripe_api, text: str, says: str) -> None:
    ack, later = _answer(web, slack, text)
    assert later is None
    assert says in _text(ack)
    assert ack["response_type"] == "ephemeral"
    assert stripe_api.requests == []


def test_unknown_id_says_not_found(web, slack, stripe_api) -> None:
    _, later = _answer(web, slack, "pi_3DoesNotExist000000000")
    assert "No payment, refund or dispute `pi_3DoesNotExist000000000` was found" in later["text"]


@pytest.mark.parametrize(
    ("fault", "says"),
    [
        ("down", "did not answer in time"),
        ("slow", "did not answer in time"),
        ("401", "rejected our API key"),
        ("500", "answered with an error"),
        ("429", "rate-limiting"),
    ],
)
def test_stripe_trouble_is_said_in_plain_words_and_the_ack_is_immediate(
    web, slack, stripe_api, fault: str, says: str
) -> None:
    seeded = stripe_api.add_payment(1000, "usd")
    if fault == "down":
        stripe_api.stop()
    elif fault == "slow":
        stripe_api.latency = 5.0  # the test settings give Stripe 2 s per call
    elif fault == "401":
        stripe_api.fail_next(5, status=401, error_type="invalid_request_error", message="Invalid API Key provided")
    elif fault == "500":
        stripe_api.fail_next(5, status=500)
    else:
        stripe_api.fail_next(5, status=429, retry_after=1)
    resp, key = web.slash(seeded["payment_intent"]["id"])
    acked = time.monotonic()
    assert resp.status_code == 200 and "Looking up" in resp.json()["text"]
    calls = slack.wait_for(lambda calls: any(c.key == key for c in calls), timeout=20)
    message = slack.responses(key)[-1]
    assert says in message["text"], message
    assert "Traceback" not in message["text"]
    if fault == "slow":
        # The ack was back before Stripe's (late) outcome was known: it never waits for Stripe.
        assert all(c.at > acked for c in calls if c.key == key)


def _refund(stripe_api: StripeStandIn, charge: str, amount: int) -> str:
    import requests
    from conftest import STRIPE_KEY

    resp = requests.post(
        f"{stripe_api.url}/v1/refunds",
        data={"charge": charge, "amount": amount},
        headers={"Authorization": f"Bearer {STRIPE_KEY}"},
        timeout=5,
    )
    assert resp.status_code == 200, resp.text
    return resp.json()["id"]
