"""On-call alerts end to end: disputes and their threads, reminders, fraud warnings, rate incidents."""

from __future__ import annotations

import copy
import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from conftest import LiveServer, replace_settings
from freezegun import freeze_time
from support import fixture_json, threads

from domain.clock import utcnow
from handlers.payments import on_charge
from handlers.registry import EventContext
from messages import ids
from services import oncall
from store import db

LOST = fixture_json("stripe/event_charge.dispute.closed__lago_2020-08-27_lost.json")
EFW = fixture_json("stripe/event_radar.early_fraud_warning.created__gumroad.json")
FAILED_CHARGE = fixture_json("stripe/event_charge.failed__stripe-ruby-mock.json")["data"]["object"]


def _dispute_event(event_id: str, created: int, event_type: str, **changes) -> dict:
    event = copy.deepcopy(LOST)
    event["id"], event["created"], event["type"] = event_id, created, event_type
    event["data"]["object"].update(changes)
    return event


def _history(due_by: int) -> list[dict]:
    """A chargeback's life, as Stripe would send it, in true order."""
    evidence = {"due_by": due_by, "has_evidence": False, "past_due": False, "submission_count": 0}
    submitted = {**evidence, "has_evidence": True, "submission_count": 1}
    return [
        _dispute_event(
            "evt_d1", 1_790_000_000, "charge.dispute.created", status="needs_response", evidence_details=evidence
        ),
        _dispute_event(
            "evt_d2",
            1_790_000_060,
            "charge.dispute.funds_withdrawn",
            status="needs_response",
            evidence_details=evidence,
        ),
        _dispute_event(
            "evt_d3", 1_790_100_000, "charge.dispute.updated", status="under_review", evidence_details=submitted
        ),
        _dispute_event("evt_d4", 1_790_900_000, "charge.dispute.closed", status="lost", evidence_details=submitted),
    ]


def _channel(web: LiveServer, channel: str = "C0DISPUTES") -> tuple[list[dict], dict[str, list[str]]]:
    """Top-level messages of a channel and, for each, the texts in its thread."""
    return threads(web.slack.messages.get(channel, []))


def _send(web: LiveServer, events: list[dict]) -> None:
    for event in events:
        assert web.webhook(event).status_code == 200
        web.drain()
    web.deliver()


def test_a_dispute_alert_follows_the_dispute_to_its_end(web: LiveServer) -> None:
    _send(web, _history(due_by=1_790_600_000))
    [alert], threads = _channel(web)
    shown = json.dumps(alert, ensure_ascii=False)
    dispute = LOST["data"]["object"]
    for expected in (
        "Dispute $45.16",
        dispute["payment_intent"],
        "lost",
        "fraudulent",
        "Evidence due",
        f"https://dashboard.stripe.com/test/disputes/{dispute['id']}",
        "evidence submitted",
    ):
        assert expected in shown, expected
    assert ids.ASSIGN_DISPUTE not in shown  # closed: nothing left to take
    assert threads[alert["ts"]] == [
        "💸 Funds withdrawn: $45.16 (plus Stripe's dispute fee).",
        "Status: 🚨 needs response → 🔎 under review",
        "Closed: 🔎 under review → 💸 lost",
    ]


def test_out_of_order_delivery_gives_the_same_end_and_no_step_backwards(web: LiveServer) -> None:
    history = _history(due_by=1_790_600_000)
    _send(web, [history[3], history[0], history[2], history[1]])
    [alert], threads = _channel(web)
    assert "💸 lost" in json.dumps(alert, ensure_ascii=False)
    # The late 'created' and 'updated' say nothing; the money movement is still told, once.
    assert threads[alert["ts"]] == ["💸 Funds withdrawn: $45.16 (plus Stripe's dispute fee)."]
    _send(web, [history[1]])  # redelivered
    assert _channel(web)[1][alert["ts"]] == threads[alert["ts"]]


@pytest.mark.parametrize(
    "name",
    [
        "event_charge.dispute.created__stripe-ruby-mock.json",
        "event_charge.dispute.closed__lago_2020-08-27_won.json",
        "event_charge.dispute.closed__lago_basil_warning_closed.json",
    ],
)
def test_every_fixture_dispute_event_raises_one_alert(web: LiveServer, name: str) -> None:
    event = fixture_json(f"stripe/{name}")
    _send(web, [event])
    [alert], _ = _channel(web)
    obj = event["data"]["object"]
    shown = json.dumps(alert, ensure_ascii=False)
    assert obj["id"] in shown and obj["status"].replace("_", " ") in shown
    assert ("Inquiry" in shown) == obj["status"].startswith("warning_")


def test_assign_to_me_records_the_owner_once(make_server_for, settings, slack, conn) -> None:
    web = make_server_for(replace_settings(settings, oncall_group="S0ONCALL"), slack)
    slack.set_usergroup("S0ONCALL", ["U0ONCALL1", "U0ONCALL2"])
    event = _history(due_by=1_790_600_000)[0]
    _send(web, [event])
    dispute_id = event["data"]["object"]["id"]
    resp, key = web.click(ids.ASSIGN_DISPUTE, dispute_id, user="U0ONCALL1", channel="C0DISPUTES")
    web.slack.wait_for(lambda calls: any(c.key == key for c in calls))
    assert "You own" in web.slack.responses(key)[-1]["text"]
    _, key2 = web.click(ids.ASSIGN_DISPUTE, dispute_id, user="U0ONCALL2", channel="C0DISPUTES")
    web.slack.wait_for(lambda calls: any(c.key == key2 for c in calls))
    assert "<@U0ONCALL1> already took this dispute" in web.slack.responses(key2)[-1]["text"]
    conn.rollback()
    assert conn.execute("SELECT owner FROM disputes").fetchone() == ("U0ONCALL1",)
    web.deliver()
    [alert], threads = _channel(web)
    assert "<@U0ONCALL1>" in json.dumps(alert) and ids.ASSIGN_DISPUTE not in json.dumps(alert)
    assert threads[alert["ts"]] == ["🙋 <@U0ONCALL1> took this dispute."]


def test_reminders_at_72_and_24_hours_once_each_with_two_workers(web: LiveServer) -> None:
    due = datetime(2026, 12, 10, 12, 0, tzinfo=UTC)
    settings = replace_settings(web.settings, oncall_group="S0ONCALL")
    _send(web, [_history(due_by=int(due.timestamp()))[0]])

    def two_workers_at(moment: datetime) -> int:
        counts: list[int] = []
        with freeze_time(moment):
            threads = [
                threading.Thread(target=lambda: counts.append(oncall.send_reminders(web.deps.pool, settings, utcnow())))
                for _ in range(2)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        return sum(counts)

    assert two_workers_at(due - timedelta(hours=72, seconds=1)) == 0
    assert two_workers_at(due - timedelta(hours=72)) == 1
    assert two_workers_at(due - timedelta(hours=30)) == 0
    assert two_workers_at(due - timedelta(hours=24)) == 1
    assert two_workers_at(due - timedelta(hours=2)) == 0
    web.deliver()
    [alert], threads = _channel(web)
    reminders = [t for t in threads[alert["ts"]] if t.startswith("⏰")]
    assert len(reminders) == 2
    assert all("<!subteam^S0ONCALL>" in t and "Assign to me" in t for t in reminders)
    assert "72h reminder" in reminders[0] and "24h reminder" in reminders[1]


def test_no_reminder_after_the_dispute_closes_or_evidence_is_in(web: LiveServer) -> None:
    due = datetime(2026, 12, 10, 12, 0, tzinfo=UTC)
    history = _history(due_by=int(due.timestamp()))
    _send(web, [history[0], history[2]])  # evidence submitted
    with freeze_time(due - timedelta(hours=20)):
        assert oncall.send_reminders(web.deps.pool, web.settings, utcnow()) == 0
    _send(web, [history[3]])
    with freeze_time(due - timedelta(hours=10)):
        assert oncall.send_reminders(web.deps.pool, web.settings, utcnow()) == 0


def test_early_fraud_warning_offers_a_refund_that_goes_through_the_policy(web: LiveServer, stripe_api, conn) -> None:
    seeded = stripe_api.add_payment(5000, "usd", email="victim@example.com")
    event = copy.deepcopy(EFW)
    event["data"]["object"].update(charge=seeded["charge"]["id"], payment_intent=seeded["payment_intent"]["id"])
    _send(web, [event])
    [alert], _ = _channel(web)
    shown = json.dumps(alert, ensure_ascii=False)
    assert "stolen card" in shown and "Actionable: yes" in shown and ids.EFW_REFUND in shown
    value = f"{seeded['payment_intent']['id']}|{event['data']['object']['id']}"
    _, key = web.click(ids.EFW_REFUND, value, user="U0SUPPORT1", channel="C0DISPUTES")
    web.slack.wait_for(lambda calls: any(c.key == key for c in calls), timeout=15)
    assert "is waiting for an approver" in web.slack.responses(key)[-1]["text"]
    conn.rollback()
    assert conn.execute("SELECT reason, requested_via, amount, note FROM refund_requests").fetchone() == (
        "fraudulent",
        "fraud_warning",
        5000,
        f"Early fraud warning {event['data']['object']['id']}: refunding to avoid a dispute.",
    )


def test_review_notes(web: LiveServer) -> None:
    review = fixture_json("stripe/object_review__openapi-fixtures3.json")
    opened = {
        "id": "evt_rv1",
        "object": "event",
        "type": "review.opened",
        "created": 1_790_000_000,
        "livemode": False,
        "data": {"object": review},
    }
    closed = {
        **opened,
        "id": "evt_rv2",
        "type": "review.closed",
        "created": 1_790_000_100,
        "data": {"object": {**review, "open": False, "closed_reason": "approved"}},
    }
    _send(web, [opened, closed])
    [note], threads = _channel(web, "C0ALERTS")
    assert note["text"].startswith("🔎 Radar review opened for `ch_")
    assert threads[note["ts"]] == [f"Radar review for `{review['charge']}` closed: approved."]


def test_alerts_for_a_connected_account_go_to_its_channel(web: LiveServer) -> None:
    routed = replace_settings(web.settings, alert_routes={("acct_1Shop", "disputes"): "C0SHOPDISPUTES"})
    event = _history(due_by=1_790_600_000)[0]
    event["account"] = "acct_1Shop"
    web.webhook(event)
    from handlers.dispatch import process_next

    process_next(web.deps.pool, routed, now=utcnow())
    web.deliver()
    assert len(web.slack.messages.get("C0SHOPDISPUTES", [])) == 1 and "C0DISPUTES" not in web.slack.messages


# --- rate incidents ---------------------------------------------------------------------------------------

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _outcomes(web: LiveServer, *, ok: int, failed: int, at: datetime, prefix: str) -> None:
    """Payment outcomes through the same handler webhooks use."""
    ctx = EventContext("evt_x", "charge.succeeded", None, at, at, web.settings)
    with db.transaction(web.deps.pool) as conn:
        for i in range(ok + failed):
            charge = {**FAILED_CHARGE, "id": f"ch_{prefix}{i:07d}", "payment_intent": None}
            if i < ok:
                charge.update(
                    status="succeeded", paid=True, captured=True, amount_captured=charge["amount"], failure_code=None
                )
                on_charge(conn, charge, ctx)
            else:
                charge["outcome"] = {
                    **(charge.get("outcome") or {}),
                    "reason": "insufficient_funds" if i % 3 else "expired_card",
                }
                on_charge(conn, charge, EventContext("evt_x", "charge.failed", None, at, at, web.settings))


@pytest.mark.parametrize(("ok", "failed", "alerts"), [(10, 9, 0), (951, 49, 0), (949, 51, 1)])
def test_failure_rate_thresholds(web: LiveServer, ok: int, failed: int, alerts: int) -> None:
    _outcomes(web, ok=ok, failed=failed, at=T0 - timedelta(minutes=5), prefix="t")
    said = oncall.check_incidents(web.deps.pool, web.settings, T0)
    assert said.count("payment_failures:open") == alerts


def test_a_sustained_incident_is_one_alert_and_recovery_one_message(web: LiveServer) -> None:
    _outcomes(web, ok=900, failed=100, at=T0 - timedelta(minutes=1), prefix="a")
    assert oncall.check_incidents(web.deps.pool, web.settings, T0) == ["payment_failures:open"]
    for minute in range(1, 10):  # still failing, a little worse
        _outcomes(web, ok=90, failed=11, at=T0 + timedelta(minutes=minute - 0.5), prefix=f"b{minute}")
        assert oncall.check_incidents(web.deps.pool, web.settings, T0 + timedelta(minutes=minute)) == []
    # Healthy from minute 20 on (the old failures have left the window by then).
    _outcomes(web, ok=500, failed=0, at=T0 + timedelta(minutes=19), prefix="c")
    assert oncall.check_incidents(web.deps.pool, web.settings, T0 + timedelta(minutes=26)) == []
    # Open for 30 minutes: it escalates, once (tests/services/test_paging.py says how).
    assert oncall.check_incidents(web.deps.pool, web.settings, T0 + timedelta(minutes=40)) == ["escalate:1"]
    assert oncall.check_incidents(web.deps.pool, web.settings, T0 + timedelta(minutes=41)) == [
        "payment_failures:recover"
    ]
    web.deliver()
    [alert], threads = _channel(web, "C0ALERTS")
    assert alert["text"].startswith("✅ Resolved. ~🚨 10.0% of payments failed")
    assert "Top decline codes: `insufficient_funds` 66, `expired_card` 34" in alert["text"]
    assert len(threads[alert["ts"]]) == 2
    assert threads[alert["ts"]][0].startswith("⏫ Everyone: this incident has lasted")
    assert threads[alert["ts"]][1].startswith(
        "✅ Recovered: payment failures have stayed at or below 5% for a full 15-minute window"
    )


def test_ten_thousand_failures_in_a_minute_make_a_handful_of_messages_within_slacks_limits(
    make_server_for, settings, slack
) -> None:
    web = make_server_for(replace_settings(settings, slack_channel_pace_seconds=1.0), slack)
    slack.per_channel_rate = 1.0  # the stand-in answers 429 to anything faster than Slack allows
    for second in range(0, 60, 6):
        _outcomes(web, ok=0, failed=1000, at=T0 + timedelta(seconds=second), prefix=f"f{second}")
        oncall.check_incidents(web.deps.pool, web.settings, T0 + timedelta(seconds=second + 1))
    stop = threading.Event()
    from services import slack_delivery
    from worker.main import _loop

    client = slack_delivery.build_client(web.settings.slack_bot_token, web.settings.slack_api_url)
    thread = threading.Thread(
        target=_loop,
        args=(
            "slack",
            lambda: slack_delivery.deliver_next(web.deps.pool, client, now=utcnow(), pace_seconds=1.0),
            stop,
            0.05,
        ),
    )
    thread.start()
    try:
        slack.wait_for(lambda calls: any(c.method == "chat.postMessage" and c.status == 200 for c in calls))
    finally:
        stop.set()
        thread.join(10)
    posted = [c for c in slack.calls if c.method.startswith("chat.")]
    assert 1 <= len(posted) <= 5
    assert all(c.status == 200 for c in posted), [c.status for c in posted]


def test_webhook_failures_alert(web: LiveServer) -> None:
    good = fixture_json("stripe/event_charge.refunded__stripe-ruby-mock.json")
    for i in range(30):
        event = {**good, "id": f"evt_ok{i}"}
        if i < 2:  # a refund without an id: the handler fails on it
            event = {**event, "type": "refund.updated", "data": {"object": {"object": "refund", "amount": 1}}}
        web.webhook(event)
    web.drain()
    said = oncall.check_incidents(web.deps.pool, web.settings, utcnow() + timedelta(seconds=1))
    assert said == ["webhook_failures:open"]
    web.deliver()
    [alert], _ = _channel(web, "C0ALERTS")
    assert "6.7% of Stripe events failed to process" in alert["text"] and "refund-desk events list" in alert["text"]


def test_a_rejected_stripe_key_alerts_at_once_and_only_once(web: LiveServer, stripe_api) -> None:
    stripe_api.fail_next(10, status=401, error_type="invalid_request_error", message="Invalid API Key provided")
    for text in ("pi_3KeyProblem0000000000", "pi_3KeyProblem0000000001"):
        resp, key = web.slash(text)
        web.slack.wait_for(lambda calls, key=key: any(c.key == key for c in calls))
    web.deliver()
    [alert], _ = _channel(web, "C0ALERTS")
    assert alert["text"].startswith("🔑 Stripe rejected our API key")
    later = utcnow() + web.settings.failure_rate_window + timedelta(minutes=1)
    assert oncall.check_incidents(web.deps.pool, web.settings, later) == ["stripe_key:recover"]


def test_metrics_count_alerts_and_requests(web: LiveServer) -> None:
    _send(web, [_history(due_by=1_790_600_000)[0]])
    text = web.http.get(f"{web.url}/metrics").text
    assert 'refund_desk_alerts_total{kind="dispute"}' in text
    assert 'refund_desk_refund_requests{status="pending"} 0.0' in text
    assert "refund_desk_event_processing_seconds_count" in text
