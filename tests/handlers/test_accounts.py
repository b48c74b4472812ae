"""Connect: accounts disabled or disconnected alert in their routed channel; a connected account's payment
is found by id; failure rates are per account as well as overall."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta

from conftest import LiveServer, replace_settings
from support import fixture_json, threads

from domain.clock import utcnow
from handlers.dispatch import process_next
from handlers.payments import on_charge
from handlers.registry import EventContext
from services import connect, oncall
from standins.stripe_api import StripeStandIn
from store import db

ACCOUNT = "acct_1Fg9jUA3kq9o1aTc"  # the account of both dj-stripe fixtures below
DISABLED = fixture_json("stripe/event_account.updated__djstripe_connect_standard_charges_disabled.json")
DEAUTHORIZED = fixture_json("stripe/event_account.application.deauthorized__djstripe.json")
CAPABILITY = fixture_json("stripe/object_capability__openapi-fixtures3.json")
FAILED_CHARGE = fixture_json("stripe/event_charge.failed__stripe-ruby-mock.json")["data"]["object"]


def _routed(web: LiveServer, make_server_for, slack) -> LiveServer:
    routes = {(ACCOUNT, "alerts"): "C0SHOPALERTS", ("acct_1PgafTB7WZ01zgkW", "*"): "C0CAPS"}
    return make_server_for(replace_settings(web.settings, alert_routes=routes, oncall_group="S0ONCALL"), slack)


def _apply(web: LiveServer, *events: dict) -> None:
    for event in events:
        assert web.webhook(event).status_code == 200
    while process_next(web.deps.pool, web.settings, now=utcnow()) is not None:
        pass
    web.deliver()


def test_charges_disabled_and_a_disconnected_account_alert_in_the_accounts_channel(
    web: LiveServer, make_server_for, slack
) -> None:
    desk = _routed(web, make_server_for, slack)
    _apply(desk, DISABLED, DEAUTHORIZED)
    _apply(desk, DISABLED, DEAUTHORIZED)  # redelivered: nothing more
    top, _ = threads(slack.messages["C0SHOPALERTS"])
    texts = [m["text"] for m in top]
    assert len(texts) == 3 and "C0ALERTS" not in slack.messages
    charges = next(t for t in texts if "charges disabled" in t)
    assert charges.startswith("<!subteam^S0ONCALL> 🚫 Connected account `acct_1Fg9jUA3kq9o1aTc`: charges disabled.")
    assert "Reason: `requirements.past_due`" in charges
    assert "Stripe still requires: `external_account`, `tos_acceptance.date`, `tos_acceptance.ip`" in charges
    assert any("payouts disabled" in t for t in texts)
    gone = next(t for t in texts if "disconnected" in t)
    assert "🔌" in gone and "https://dashboard.stripe.com/test/connect/accounts/acct_1Fg9jUA3kq9o1aTc" in json.dumps(
        top[texts.index(gone)]
    )


def test_a_problem_that_clears_is_told_in_its_thread_once(web: LiveServer, make_server_for, slack) -> None:
    desk = _routed(web, make_server_for, slack)
    healthy = copy.deepcopy(DISABLED)
    healthy["id"], healthy["created"] = "evt_1AccountHealthy0001", DISABLED["created"] + 60
    healthy["data"]["object"].update(charges_enabled=True, payouts_enabled=True)
    healthy["data"]["object"]["requirements"].update(disabled_reason=None, past_due=[], currently_due=[])
    _apply(desk, DISABLED, healthy)
    _apply(desk, DISABLED)  # a late, older snapshot changes nothing
    top, replies = threads(slack.messages["C0SHOPALERTS"])
    assert len(top) == 2
    assert sorted(r for m in top for r in replies[m["ts"]]) == [
        "✅ No longer charges disabled.",
        "✅ No longer payouts disabled.",
    ]


def test_an_inactive_capability_alerts_with_what_it_requires(web: LiveServer, make_server_for, slack) -> None:
    desk = _routed(web, make_server_for, slack)
    capability = {
        **CAPABILITY,
        "requirements": {
            **CAPABILITY["requirements"],
            "disabled_reason": "requirements.past_due",
            "past_due": ["individual.verification.document"],
        },
    }
    event = {
        "id": "evt_1CapabilityUpdated01",
        "object": "event",
        "account": capability["account"],
        "api_version": "2026-10-28.endive",
        "created": 1_790_000_000,
        "livemode": False,
        "type": "capability.updated",
        "data": {"object": capability},
    }
    _apply(desk, event)
    [alert], _ = threads(slack.messages["C0CAPS"])
    assert "capability `card_payments` inactive" in alert["text"]
    assert "`individual.verification.document`" in alert["text"]


def test_a_connected_accounts_payment_known_only_to_stripe_is_found_by_id(
    web: LiveServer, stripe_api: StripeStandIn, conn
) -> None:
    shop = stripe_api.add_account("acct_1ShopConnected0002", name="Shop")
    stripe_api.add_account("acct_1OtherConnected003")
    payment = stripe_api.add_payment(4200, "usd", account=shop["id"])
    assert connect.sync_accounts(web.deps.pool, web.deps.stripe) == 2
    pi = payment["payment_intent"]["id"]
    _, key = web.slash(pi)
    web.slack.wait_for(lambda calls: any(c.key == key for c in calls), timeout=15)
    answer = web.slack.responses(key)[-1]
    assert answer["text"].startswith(f"{pi}: $42.00 succeeded")
    assert f"account `{shop['id']}`" in json.dumps(answer, ensure_ascii=False)
    conn.rollback()
    assert conn.execute("SELECT account FROM object_accounts WHERE object_id = %s", (pi,)).fetchone() == (shop["id"],)
    assert conn.execute("SELECT account FROM payments WHERE id = %s", (pi,)).fetchone() == (shop["id"],)
    # Its refunds are looked for in the same account, by id, the next time.
    refund_payment = stripe_api.add_payment(1500, "usd", account=shop["id"])
    _, key = web.slash(f"{refund_payment['charge']['id']} {shop['id']}")  # the account named: no search
    web.slack.wait_for(lambda calls: any(c.key == key for c in calls), timeout=15)
    assert web.slack.responses(key)[-1]["text"].startswith(refund_payment["payment_intent"]["id"])


def test_an_id_on_no_account_is_not_found(web: LiveServer, stripe_api: StripeStandIn) -> None:
    stripe_api.add_account("acct_1ShopConnected0004")
    connect.sync_accounts(web.deps.pool, web.deps.stripe)
    _, key = web.slash("pi_3NowhereToBeFound0000")
    web.slack.wait_for(lambda calls: any(c.key == key for c in calls), timeout=15)
    assert (
        web.slack.responses(key)[-1]["text"]
        == "No payment, refund or dispute `pi_3NowhereToBeFound0000` was found in Stripe."
    )


T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _outcomes(web: LiveServer, account: str | None, *, ok: int, failed: int, prefix: str) -> None:
    at = T0 - timedelta(minutes=2)
    with db.transaction(web.deps.pool) as conn:
        for i in range(ok + failed):
            charge = {**FAILED_CHARGE, "id": f"ch_{prefix}{i:07d}", "payment_intent": None}
            event_type = "charge.succeeded" if i < ok else "charge.failed"
            if i < ok:
                charge.update(status="succeeded", paid=True, captured=True, amount_captured=charge["amount"])
            on_charge(conn, charge, EventContext("evt_x", event_type, account, at, at, web.settings))


def test_one_accounts_spike_alerts_for_that_account_only(web: LiveServer, make_server_for, slack) -> None:
    desk = make_server_for(replace_settings(web.settings, alert_routes={("acct_1Spiking", "alerts"): "C0SPIKE"}), slack)
    _outcomes(desk, None, ok=1000, failed=10, prefix="p")
    _outcomes(desk, "acct_1Healthy", ok=200, failed=3, prefix="h")
    _outcomes(desk, "acct_1Spiking", ok=30, failed=20, prefix="s")
    assert oncall.check_incidents(desk.deps.pool, desk.settings, T0) == ["payment_failures:acct_1Spiking:open"]
    assert oncall.check_incidents(desk.deps.pool, desk.settings, T0 + timedelta(minutes=1)) == []
    desk.deliver()
    [alert], _ = threads(slack.messages["C0SPIKE"])
    assert alert["text"].startswith("🚨 `acct_1Spiking`: 40.0% of payments failed")
    assert "C0ALERTS" not in slack.messages
    # A window later, healthy: it recovers in its own channel.
    assert oncall.check_incidents(desk.deps.pool, desk.settings, T0 + timedelta(minutes=14)) == []
    assert oncall.check_incidents(desk.deps.pool, desk.settings, T0 + timedelta(minutes=29)) == [
        "payment_failures:acct_1Spiking:recover"
    ]
