"""A dispute alert's relative deadline is refreshed when a reminder goes out and once the deadline passes,
so it never says "in 7 days" about a deadline that has passed."""

from __future__ import annotations

import copy
import json
from datetime import timedelta

from conftest import LiveServer
from support import fixture_json, threads

from domain.clock import utcnow
from services import oncall

LOST = fixture_json("stripe/event_charge.dispute.closed__lago_2020-08-27_lost.json")


def _alert(web: LiveServer) -> tuple[str, list[str]]:
    web.deliver()
    [alert], replies = threads(web.slack.messages["C0DISPUTES"])
    return json.dumps(alert, ensure_ascii=False), replies[alert["ts"]]


def test_the_deadline_is_refreshed_at_each_reminder_and_when_it_passes(web: LiveServer) -> None:
    now = utcnow()
    due = (now + timedelta(days=7, hours=1)).replace(microsecond=0)
    event = copy.deepcopy(LOST)
    event.update(id="evt_1DisputeRefresh01", type="charge.dispute.created", created=int(now.timestamp()))
    event["data"]["object"].update(
        status="needs_response",
        evidence_details={
            "due_by": int(due.timestamp()),
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        },
    )
    assert web.webhook(event).status_code == 200
    web.drain()
    shown, _ = _alert(web)
    assert "(in 7 days" in shown

    assert oncall.send_reminders(web.deps.pool, web.settings, due - timedelta(hours=71)) == 1
    shown, replies = _alert(web)
    assert "(in 2 days 23 h)" in shown and "in 7 days" not in shown
    assert replies[-1].startswith("⏰")

    assert oncall.send_reminders(web.deps.pool, web.settings, due + timedelta(hours=2)) == 0
    shown, replies = _alert(web)
    assert "(2 h ago)" in shown and "in 2 days" not in shown
    assert (
        replies[-1]
        == f"⌛ The evidence deadline of `{event['data']['object']['id']}` has passed with no evidence submitted."
    )
    # Told once, however often the worker looks.
    oncall.send_reminders(web.deps.pool, web.settings, due + timedelta(hours=3))
    assert _alert(web)[1].count(replies[-1]) == 1
