"""The delivery check: events Stripe could not deliver are fetched, stored and applied once (the
platform's and each connected account's), on-call hears how many; a silent endpoint alerts once and
recovers once."""

from __future__ import annotations

import socket

from conftest import WEBHOOK_SECRET, LiveServer
from support import fixture_json, threads

from domain.clock import utcnow
from handlers.backfill import check_deliveries
from services import connect
from standins.stripe_api import StripeStandIn
from store import payments as store


def _dead_url() -> str:
    """A local URL nothing listens on: Stripe's deliveries there fail."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/webhooks/stripe"


def _check(web: LiveServer) -> list[str] | None:
    connect.sync_accounts(web.deps.pool, web.deps.stripe)
    return check_deliveries(web.deps.pool, web.deps.stripe.client, web.settings, utcnow())


def test_undelivered_events_we_lack_are_stored_applied_once_and_counted(
    web: LiveServer, stripe_api: StripeStandIn, conn
) -> None:
    stripe_api.webhook_max_tries = 1
    stripe_api.deliver_webhooks(_dead_url(), WEBHOOK_SECRET)
    shop = stripe_api.add_account("acct_1ShopConnected0001", name="Shop")
    platform_payment = stripe_api.add_payment(5000, "usd")
    shop_payment = stripe_api.add_payment(2500, "eur", account=shop["id"])
    stripe_api.flush_webhooks()
    undelivered = len(stripe_api.events)
    assert undelivered >= 4 and {a["status"] for a in stripe_api.webhook_attempts} == {None}

    assert _check(web) == ["webhook_delivery:open"]
    assert web.drain() == undelivered
    conn.rollback()
    assert conn.execute("SELECT count(*), count(DISTINCT source) FROM stripe_events").fetchone() == (undelivered, 1)
    assert store.find_view(conn, platform_payment["payment_intent"]["id"]).payment.amount_captured == 5000
    shop_view = store.find_view(conn, shop_payment["payment_intent"]["id"])
    assert shop_view.payment.account == shop["id"]

    # The next check finds nothing new and says nothing more; nothing is applied twice.
    assert _check(web) == []
    assert web.drain() == 0
    web.deliver()
    [alert], _ = threads(web.slack.messages["C0ALERTS"])
    assert f"Stripe could not deliver {undelivered} of {undelivered} events" in alert["text"]
    assert f"{undelivered} of them had not reached us and were fetched and stored now" in alert["text"]


def test_a_silent_endpoint_alerts_once_and_recovers_once(web: LiveServer, stripe_api: StripeStandIn, conn) -> None:
    assert web.webhook(fixture_json("stripe/event_charge.refunded__stripe-ruby-mock.json")).status_code == 200
    conn.execute("UPDATE stripe_events SET received_at = received_at - interval '1 hour'")
    conn.commit()
    assert _check(web) == []  # quiet, but Stripe has nothing newer either: not silence
    stripe_api.add_payment(1000, "usd")  # Stripe has new events; none reaches us (no endpoint)
    assert _check(web) == ["webhook_silence:open"]
    assert _check(web) == []
    # A webhook arrives again.
    later = {**fixture_json("stripe/event_charge.failed__stripe-ruby-mock.json"), "id": "evt_1SilenceOver0001"}
    assert web.webhook(later).status_code == 200
    assert _check(web) == ["webhook_silence:recover"]
    assert _check(web) == []
    web.deliver()
    [alert], thread = threads(web.slack.messages["C0ALERTS"])
    assert alert["text"].startswith("✅ Resolved. ~🔇 No Stripe webhook has arrived for 30+ min")
    assert thread[alert["ts"]] == ["✅ Webhooks are arriving again."]


def test_a_key_without_events_read_skips_the_check_and_says_why(web: LiveServer, stripe_api: StripeStandIn) -> None:
    stripe_api.deny("/v1/events", "rak_event_read")
    assert _check(web) is None
