"""The inbox backlog is visible: /metrics by priority, and one alert (then one recovery) when an urgent
event has waited longer than BACKLOG_ALERT_SECONDS."""

from __future__ import annotations

import copy
import json
import re
from datetime import timedelta

from conftest import LiveServer
from support import fixture_json, replies, top_level

from domain.clock import utcnow
from services import oncall

DISPUTE = fixture_json("stripe/event_charge.dispute.created__stripe-ruby-mock.json")
CHARGE = fixture_json("stripe/event_charge.failed__stripe-ruby-mock.json")


def _charge(n: int) -> dict:
    event = copy.deepcopy(CHARGE)
    event["id"] = f"evt_charge_{n}"
    event["data"]["object"]["id"] = f"ch_backlog_{n}"
    return event


def _metric(text: str, name: str, priority: str) -> float:
    match = re.search(rf'^{name}{{priority="{priority}"}} (\S+)$', text, re.MULTILINE)
    assert match, f"{name} {priority} not in /metrics"
    return float(match.group(1))


def test_metrics_show_due_events_and_their_wait_by_priority(web: LiveServer) -> None:
    for n in range(3):
        assert web.webhook(_charge(n)).status_code == 200
    assert web.webhook(DISPUTE).status_code == 200
    text = web.http.get(f"{web.url}/metrics", timeout=10).text
    assert _metric(text, "refund_desk_stripe_events_due", "routine") == 3
    assert _metric(text, "refund_desk_stripe_events_due", "urgent") == 1
    assert _metric(text, "refund_desk_stripe_events_oldest_due_age_seconds", "urgent") >= 0
    web.drain()
    text = web.http.get(f"{web.url}/metrics", timeout=10).text
    assert _metric(text, "refund_desk_stripe_events_due", "urgent") == 0
    assert _metric(text, "refund_desk_stripe_events_oldest_due_age_seconds", "routine") == 0


def test_an_urgent_event_waiting_too_long_raises_one_alert_then_one_recovery(web: LiveServer) -> None:
    assert web.webhook(_charge(0)).status_code == 200
    assert web.webhook(DISPUTE).status_code == 200
    t0 = utcnow()

    def check(after: float) -> list[str]:
        return [
            s
            for s in oncall.check_incidents(web.deps.pool, web.settings, t0 + timedelta(seconds=after))
            if "backlog" in s
        ]

    assert check(60) == []  # waiting, but within BACKLOG_ALERT_SECONDS (120)
    assert check(125) == ["event_backlog:open"]
    assert check(200) == []  # one alert per incident
    web.drain()  # the worker catches up
    assert check(300) == []  # healthy from now on...
    assert check(300 + 14 * 60) == []
    assert check(300 + 15 * 60) == ["event_backlog:recover"]  # ...for a full window
    assert check(300 + 16 * 60) == []

    web.deliver()
    alerts = web.slack.messages["C0ALERTS"]
    [alert] = top_level(alerts)
    shown = json.dumps(alert, ensure_ascii=False)
    assert "Resolved" in shown and "Stripe events are waiting" in shown  # the alert, struck through
    assert re.search(r"due for 2 min [56] s, over the 2 min allowed\. Due now: 1 urgent, 1 routine\.", shown)
    assert [r["text"] for r in replies(alerts, alert)] == [
        "✅ Recovered: urgent Stripe events have been applied within 2 min for a full 15-minute window."
    ]
