"""Payout events: a real failed payout alerts on-call with Stripe's code and message, once, where ALERT_ROUTES says."""

from __future__ import annotations

import json

from conftest import replace_settings
from support import fixture_json

FAILED = fixture_json("stripe/event_payout.failed__gitpay_connect_livemode.json")
ACCOUNT = FAILED["account"]


def test_a_failed_payout_alerts_the_accounts_alerts_channel_once(make_server_for, settings, slack, conn) -> None:
    routed = replace_settings(settings, alert_routes={(ACCOUNT, "alerts"): "C0CONNECTED"})
    web = make_server_for(routed, slack)
    assert web.webhook(FAILED).status_code == 200
    web.drain()
    conn.execute("UPDATE stripe_events SET status = 'pending', next_attempt_at = now()")  # a replay
    conn.commit()
    web.drain()
    web.deliver()
    [alert] = slack.messages["C0CONNECTED"]
    obj = FAILED["data"]["object"]
    assert obj["failure_code"] in alert["text"] and obj["failure_message"] in alert["text"]
    assert "74.09" in alert["text"] and ACCOUNT in alert["text"]
    # A live-mode payout of a connected account: the Dashboard link is the live one, under the account.
    assert f"https://dashboard.stripe.com/{ACCOUNT}/payouts/{obj['id']}" in json.dumps(alert["blocks"])
    assert "C0ALERTS" not in slack.messages
    assert conn.execute("SELECT status, reconcile_due_at FROM payouts").fetchone() == ("failed", None)


def test_without_a_route_it_goes_to_the_alerts_channel(web, slack) -> None:
    assert web.webhook(FAILED).status_code == 200
    web.drain()
    web.deliver()
    [alert] = slack.messages["C0ALERTS"]
    assert "could_not_process" in alert["text"]
