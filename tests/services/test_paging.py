"""Paging and escalation end to end: a failure spike pages once, updates without a second page, is
acknowledged from Slack, escalates once after 30 minutes, and resolves everywhere; PagerDuty's
outages delay the page, never the Slack alert."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from conftest import LiveServer, replace_settings
from freezegun import freeze_time
from receivers import HookReceiver
from support import fixture_json, threads

from domain.clock import utcnow
from domain.hooks import Endpoint
from handlers.payments import on_charge
from handlers.registry import EventContext
from messages import ids
from services import oncall, paging
from services.hooks import HookSender
from services.hooks import deliver_next as deliver_hook
from standins.pagerduty_api import PagerDutyStandIn
from store import db

KEY = "R0UTINGKEY0STANDIN0000000000000A"
SECRET = "whsec_" + base64.b64encode(b"refund-desk-test-secret-32-bytes").decode()
FAILED_CHARGE = fixture_json("stripe/event_charge.failed__stripe-ruby-mock.json")["data"]["object"]
T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.fixture
def pd() -> Iterator[PagerDutyStandIn]:
    with PagerDutyStandIn(routing_keys=(KEY,)) as standin:
        yield standin


@pytest.fixture
def receiver() -> Iterator[HookReceiver]:
    hooks = HookReceiver(SECRET)
    yield hooks
    hooks.close()


@pytest.fixture
def paged(make_server_for, settings, slack, pd: PagerDutyStandIn, receiver: HookReceiver) -> LiveServer:
    slack.set_usergroup("S0ONCALL", ["U0ONCALL1"])
    slack.set_usergroup("S0BILLING", ["U0MANAGER1"])
    return make_server_for(
        replace_settings(
            settings,
            pagerduty_routing_key=KEY,
            pagerduty_events_url=pd.events_url,
            oncall_group="S0ONCALL",
            escalation_group="S0BILLING",
            outgoing_webhooks=(Endpoint(receiver.url, ("incident.*",)),),
            outgoing_webhook_secret=SECRET,
        ),
        slack,
    )


def _outcomes(web: LiveServer, *, ok: int, failed: int, at: datetime, prefix: str) -> None:
    """Payment outcomes through the handler webhooks use."""
    with db.transaction(web.deps.pool) as conn:
        for i in range(ok + failed):
            charge = {**FAILED_CHARGE, "id": f"ch_{prefix}{i:07d}", "payment_intent": None}
            event_type = "charge.succeeded" if i < ok else "charge.failed"
            if i < ok:
                charge.update(status="succeeded", paid=True, captured=True, amount_captured=charge["amount"])
            on_charge(conn, charge, EventContext("evt_x", event_type, None, at, at, web.settings))


def _page(web: LiveServer) -> int:
    """Send every PagerDuty event due now; return how many were taken."""
    client = paging.build_client(web.settings)
    n = 0
    while paging.deliver_next(web.deps.pool, client, now=utcnow()):
        n += 1
    return n


def _hooks(web: LiveServer) -> None:
    sender = HookSender(SECRET)
    while deliver_hook(web.deps.pool, sender, web.settings, now=utcnow()):
        pass


def _check(web: LiveServer, at: datetime) -> list[str]:
    with freeze_time(at):
        return oncall.check_incidents(web.deps.pool, web.settings, utcnow())


def test_a_spike_pages_once_escalates_once_and_resolves_everywhere(
    paged: LiveServer, pd: PagerDutyStandIn, receiver: HookReceiver
) -> None:
    web = paged
    _outcomes(web, ok=900, failed=100, at=T0 - timedelta(minutes=1), prefix="a")
    assert _check(web, T0) == ["payment_failures:open"]
    web.deliver()
    _page(web)
    [alert], thread = threads(web.slack.messages["C0ALERTS"])
    shown = json.dumps(alert, ensure_ascii=False)
    assert alert["text"].startswith("<!subteam^S0ONCALL> 🚨 10.0% of payments failed")
    assert ids.ACK_INCIDENT in shown and "PagerDuty paged" in shown
    [trigger] = pd.accepted("trigger")
    assert trigger["payload"]["severity"] == "error" and trigger["payload"]["summary"].startswith("10.0% of payments")
    dedup_key = trigger["dedup_key"]

    # Clearly worse ten minutes later: the alert and the page are updated; nobody is paged twice.
    _outcomes(web, ok=600, failed=400, at=T0 + timedelta(minutes=10), prefix="b")
    assert _check(web, T0 + timedelta(minutes=11)) == ["payment_failures:worse"]
    web.deliver()
    _page(web)
    assert [t["dedup_key"] for t in pd.accepted("trigger")] == [dedup_key, dedup_key]
    assert len(pd.opened) == 1 and "worse" in pd.alerts[dedup_key].summary
    [alert], thread = threads(web.slack.messages["C0ALERTS"])
    assert "(worse)" in alert["text"] and thread[alert["ts"]][0].startswith("⬆️ Worse:")

    # Acknowledge in Slack acknowledges in PagerDuty; the button is gone.
    _, key = web.click(ids.ACK_INCIDENT, "1", user="U0ONCALL1", channel="C0ALERTS")
    web.slack.wait_for(lambda calls: any(c.key == key for c in calls), timeout=15)
    assert "You acknowledged" in web.slack.responses(key)[-1]["text"]
    web.deliver()
    _page(web)
    assert pd.alerts[dedup_key].status == "acknowledged"
    [alert], thread = threads(web.slack.messages["C0ALERTS"])
    assert ids.ACK_INCIDENT not in json.dumps(alert) and "acknowledged by <@U0ONCALL1>" in json.dumps(alert)

    # Still open after 30 minutes: one escalation, however often the worker looks.
    assert _check(web, T0 + timedelta(minutes=30)) == ["escalate:1"]
    assert _check(web, T0 + timedelta(minutes=31)) == []
    web.deliver()
    _page(web)
    _hooks(web)
    [alert], thread = threads(web.slack.messages["C0ALERTS"])
    escalations = [t for t in thread[alert["ts"]] if t.startswith("⏫")]
    assert len(escalations) == 1 and "<!subteam^S0BILLING>" in escalations[0]
    critical = [t for t in pd.accepted("trigger") if t["payload"]["severity"] == "critical"]
    assert len(critical) == 1 and len(pd.opened) == 2
    assert len(receiver.of_type("incident.escalated")) == 1

    # Healthy for a full window: recovered in Slack, both PagerDuty alerts resolved, one hook.
    _outcomes(web, ok=500, failed=0, at=T0 + timedelta(minutes=27), prefix="c")
    _check(web, T0 + timedelta(minutes=40))
    assert _check(web, T0 + timedelta(minutes=56)) == ["payment_failures:recover"]
    web.deliver()
    _page(web)
    _hooks(web)
    [alert], thread = threads(web.slack.messages["C0ALERTS"])
    assert alert["text"].startswith("✅ Resolved.") and thread[alert["ts"]][-1].startswith("✅ Recovered")
    assert {a.status for a in pd.opened} == {"resolved"}
    assert receiver.refused == []
    assert receiver.ids_by_type() == {"incident.opened": 1, "incident.escalated": 1, "incident.resolved": 1}
    opened = receiver.of_type("incident.opened")[0]["payload"]
    assert opened["data"]["id"] == dedup_key and opened["data"]["kind"] == "payment_failures"


def test_pagerduty_failing_delays_the_page_never_the_slack_alert(paged: LiveServer, pd: PagerDutyStandIn) -> None:
    web = paged
    pd.fail_next(3, status=500)
    _outcomes(web, ok=900, failed=100, at=T0 - timedelta(minutes=1), prefix="a")
    assert _check(web, T0) == ["payment_failures:open"]
    assert web.deliver() == 1  # Slack first, whatever PagerDuty does
    client = paging.build_client(web.settings)
    now = utcnow()
    while not pd.accepted():
        paging.deliver_next(web.deps.pool, client, now=now)
        now += timedelta(minutes=10)  # past any backoff (capped at 10 minutes)
    for _ in range(3):
        now += timedelta(minutes=10)
        paging.deliver_next(web.deps.pool, client, now=now)
    assert [r["status"] for r in pd.requests] == [500, 500, 500, 202]
    assert len(pd.accepted("trigger")) == 1 and len(pd.opened) == 1


def test_pagerduty_unreachable_then_back(paged: LiveServer, pd: PagerDutyStandIn) -> None:
    web = paged
    pd.stop()
    _outcomes(web, ok=900, failed=100, at=T0 - timedelta(minutes=1), prefix="a")
    _check(web, T0)
    assert web.deliver() == 1
    client = paging.build_client(web.settings)
    assert paging.deliver_next(web.deps.pool, client, now=utcnow())  # tried, failed, kept
    pd.start()
    assert paging.deliver_next(web.deps.pool, client, now=utcnow() + timedelta(minutes=11))
    assert len(pd.accepted("trigger")) == 1


def test_an_invalid_event_is_dead_lettered_not_retried(paged: LiveServer, pd: PagerDutyStandIn, conn) -> None:
    web = paged
    broken = replace_settings(web.settings, pagerduty_routing_key="Y" * 32)  # a key PagerDuty does not know
    _outcomes(web, ok=900, failed=100, at=T0 - timedelta(minutes=1), prefix="a")
    _check(web, T0)
    client = paging.build_client(broken)
    assert paging.deliver_next(web.deps.pool, client, now=utcnow())
    assert not paging.deliver_next(web.deps.pool, client, now=utcnow() + timedelta(hours=1))
    conn.rollback()
    assert conn.execute("SELECT status, last_error FROM pagerduty_outbox").fetchone() == (
        "dead",
        "HTTP 400 invalid event Invalid routing key",
    )
    assert 'refund_desk_outbound_dead{queue="pagerduty"} 1.0' in web.http.get(f"{web.url}/metrics").text


def test_without_a_routing_key_nothing_is_paged(web: LiveServer, conn) -> None:
    _outcomes(web, ok=900, failed=100, at=T0 - timedelta(minutes=1), prefix="a")
    assert _check(web, T0) == ["payment_failures:open"]
    conn.rollback()
    assert conn.execute("SELECT count(*) FROM pagerduty_outbox").fetchone() == (0,)
    web.deliver()
    [alert], _ = threads(web.slack.messages["C0ALERTS"])
    assert "PagerDuty" not in json.dumps(alert, ensure_ascii=False) and ids.ACK_INCIDENT in json.dumps(alert)
