"""On-call: dispute alerts that follow each dispute, evidence reminders, early fraud warnings, Radar
reviews, and rate incidents (payment failures, webhook failures, a rejected Stripe key).

Everything posts through the outbox in the transaction of the change, and every alert has a
logical key, so a replayed event or a second worker never posts twice.
"""

from __future__ import annotations

import logging
from datetime import datetime

import psycopg
from psycopg_pool import ConnectionPool

from domain.alerts import Limits, Window, channel_for, incident_step, reminders_due
from domain.errors import NotFound
from domain.models import Dispute, FraudWarning, Review
from domain.policy import refusal_to_refund
from messages import alerts as ab
from messages import keys
from services.metrics import ALERTS
from settings import Settings
from store import alerts as store
from store import audit, db, outbox
from store import payments as payment_store

log = logging.getLogger(__name__)


def _channel(settings: Settings, kind: str, account: str | None) -> str | None:
    defaults = {"disputes": settings.disputes_channel, "alerts": settings.alerts_channel}
    return channel_for(kind, account, settings.alert_routes, defaults)


def _view(conn: psycopg.Connection, payment_intent: str | None, charge: str | None):
    for key in (payment_intent, charge):
        if key:
            view = payment_store.payment_view(conn, key)
            if view:
                return view
    return None


# --- disputes -----------------------------------------------------------------------------------------


def dispute_changed(
    conn: psycopg.Connection,
    settings: Settings,
    before: Dispute | None,
    after: Dispute | None,
    current: Dispute,
    *,
    event_type: str,
    event_id: str,
    now: datetime,
) -> None:
    """Post the alert the first time; afterwards update it in place and say what changed in its thread."""
    channel = _channel(settings, "disputes", current.account)
    if not channel:
        return
    key = keys.dispute(current.id)
    view = _view(conn, current.payment_intent_id, current.charge_id)
    message = ab.dispute_message(current, view, now=now)
    if not outbox.exists(conn, key):
        outbox.enqueue(conn, channel=channel, payload=message, message_key=key)
        ALERTS.labels("dispute").inc()
        return
    money_event = event_type.endswith(("funds_withdrawn", "funds_reinstated"))
    if after is None and not money_event:
        return  # a late or repeated snapshot: nothing new to say
    outbox.enqueue(conn, channel=channel, method="chat.update", payload=message, parent_key=key)
    # Keyed by event: a replayed funds_withdrawn event is not told twice.
    outbox.enqueue(
        conn,
        channel=channel,
        payload={"text": ab.dispute_change_note(before, current, event_type)},
        parent_key=key,
        message_key=keys.dispute_event(event_id),
    )


def assign_dispute(pool: ConnectionPool, settings: Settings, dispute_id: str, user: str, now: datetime) -> str:
    """Record who takes a dispute; returns what to tell the person who clicked."""
    with db.transaction(pool) as conn:
        if not store.assign(conn, dispute_id, user):
            return ab.assign_answer(dispute_id, owner=store.owner(conn, dispute_id), taken=False)
        dispute = _dispute(conn, dispute_id)
        audit.record(
            conn,
            actor=user,
            surface="slack",
            action="dispute.assigned",
            subject=dispute_id,
            stripe_ids=[dispute_id],
            at=now,
        )
        channel = _channel(settings, "disputes", dispute.account)
        if channel:
            key = keys.dispute(dispute_id)
            view = _view(conn, dispute.payment_intent_id, dispute.charge_id)
            outbox.enqueue(
                conn,
                channel=channel,
                method="chat.update",
                payload=ab.dispute_message(dispute, view, now=now),
                parent_key=key,
            )
            outbox.enqueue(conn, channel=channel, payload={"text": ab.dispute_taken_note(user)}, parent_key=key)
    return ab.assign_answer(dispute_id, owner=user, taken=True)


def _dispute(conn: psycopg.Connection, dispute_id: str) -> Dispute:
    dispute = payment_store.get_dispute(conn, dispute_id)
    if dispute is None:
        raise NotFound(f"Dispute {dispute_id} is not in our records.")
    return dispute


def send_reminders(pool: ConnectionPool, settings: Settings, now: datetime) -> int:
    """Evidence reminders due now, each sent once however many workers run this."""
    sent = 0
    with db.connection(pool) as conn:
        candidates = store.awaiting_evidence(conn, now)
    for dispute_id, already in candidates:
        with db.transaction(pool) as conn:
            dispute = _dispute(conn, dispute_id)
            kinds = reminders_due(
                due_by=dispute.evidence_due_by,
                status=dispute.status,
                evidence_submitted=dispute.evidence_submitted,
                sent=set(already),
                now=now,
            )
            for kind in kinds:
                if not store.mark_reminded(conn, dispute_id, kind, now):
                    continue
                if kind == "24h":
                    store.mark_reminded(conn, dispute_id, "72h", now)  # never a 72 h one after the 24 h
                channel = _channel(settings, "disputes", dispute.account)
                mention = ab.mention(settings.oncall_group)
                if channel:
                    outbox.enqueue(
                        conn,
                        channel=channel,
                        parent_key=keys.dispute(dispute_id),
                        payload=ab.reminder_note(dispute, kind, mention=mention, now=now),
                    )
                audit.record(
                    conn,
                    actor="system",
                    surface="worker",
                    action=f"dispute.reminded_{kind}",
                    subject=dispute_id,
                    stripe_ids=[dispute_id],
                    at=now,
                )
                ALERTS.labels("evidence_reminder").inc()
                sent += 1
    return sent


# --- Radar ----------------------------------------------------------------------------------------------


def fraud_warning(
    conn: psycopg.Connection,
    settings: Settings,
    efw: FraudWarning,
    *,
    observed_at: datetime,
    event_id: str,
    now: datetime,
) -> None:
    """Store an early fraud warning and alert on it, with a one-click refund when it is actionable."""
    change = store.save_efw(conn, efw, observed_at)
    if change is None:
        return
    audit.record(
        conn,
        actor="stripe",
        surface="webhook",
        action="early_fraud_warning.synced",
        subject=efw.id,
        stripe_ids=[i for i in (efw.id, efw.charge_id, event_id) if i],
        details={"fraud_type": efw.fraud_type, "actionable": efw.actionable},
        cause=f"{event_id}:{efw.id}",
        at=now,
    )
    channel = _channel(settings, "disputes", efw.account)
    if not channel:
        return
    view = _view(conn, efw.payment_intent_id, efw.charge_id)
    refundable_now = view is None or refusal_to_refund(view, None) is None
    message = ab.efw_message(efw, view, refundable_now=refundable_now)
    key = keys.fraud_warning(efw.id)
    if not outbox.exists(conn, key):
        outbox.enqueue(conn, channel=channel, payload=message, message_key=key)
        ALERTS.labels("early_fraud_warning").inc()
    else:
        outbox.enqueue(conn, channel=channel, method="chat.update", payload=message, parent_key=key)
        outbox.enqueue(
            conn,
            channel=channel,
            parent_key=key,
            message_key=keys.fraud_warning_event(event_id),
            payload={"text": ab.fraud_warning_update_note(efw.actionable)},
        )


def review(
    conn: psycopg.Connection, settings: Settings, obj: Review, *, opened: bool, account: str | None, event_id: str
) -> None:
    """A note in the alerts channel when a Radar review opens, and in its thread when it closes."""
    channel = _channel(settings, "alerts", account)
    if not channel:
        return
    key = keys.review(obj.id)
    note = ab.review_note(obj, opened)
    if opened or not outbox.exists(conn, key):
        outbox.enqueue(conn, channel=channel, payload=note, message_key=key if opened else keys.review_event(event_id))
    else:
        outbox.enqueue(conn, channel=channel, payload=note, parent_key=key, message_key=keys.review_event(event_id))


# --- incidents ------------------------------------------------------------------------------------------


def _limits(settings: Settings, rate: float) -> Limits:
    return Limits(rate=rate, min_attempts=settings.failure_rate_min_attempts, window=settings.failure_rate_window)


def check_incidents(pool: ConnectionPool, settings: Settings, now: datetime) -> list[str]:
    """Evaluate every rate incident once; return what was said ('payment_failures:open', …)."""
    said = []
    minutes = int(settings.failure_rate_window.total_seconds() // 60)
    checks = (
        (
            "payment_failures",
            settings.failure_rate_threshold,
            store.payment_window,
            lambda w, title: ab.failure_rate_text(w, minutes, title=title),
            "payment failures",
        ),
        (
            "webhook_failures",
            settings.webhook_failure_threshold,
            store.webhook_window,
            lambda w, title: ab.webhook_rate_text(w, minutes, title=title),
            "webhook processing failures",
        ),
    )
    for kind, rate, measure, describe, what in checks:

        def recovered(w: Window, rate: float = rate, what: str = what) -> str:
            return ab.recovery_text(w, rate, minutes, what=what)

        action = _check_rate(pool, settings, kind, _limits(settings, rate), measure, describe, recovered, now)
        if action != "none":
            said.append(f"{kind}:{action}")
    if _close_key_incident(pool, settings, now):
        said.append("stripe_key:recover")
    return said


def _check_rate(
    pool, settings: Settings, kind: str, limits: Limits, measure, describe, recovered, now: datetime
) -> str:
    channel = _channel(settings, "alerts", None)
    with db.transaction(pool) as conn:
        store.serialize(conn, kind)
        window: Window = measure(conn, now - limits.window, now)
        current = store.open_incident(conn, kind)
        step = incident_step(current.as_incident() if current else None, window, limits, now)
        if step.action == "open":
            text = describe(window, "🚨")
            incident_id = store.open_new(
                conn, kind, window.rate, now, {"attempts": window.attempts, "failures": window.failures, "text": text}
            )
            if incident_id is not None and channel:
                outbox.enqueue(conn, channel=channel, message_key=keys.incident(incident_id), payload={"text": text})
                ALERTS.labels(kind).inc()
        elif current is not None and step.action == "worse":
            text = describe(window, "🚨 (worse)")
            store.notified(conn, current.id, window.rate, now, {"text": text})
            if channel:
                key = keys.incident(current.id)
                outbox.enqueue(conn, channel=channel, method="chat.update", parent_key=key, payload={"text": text})
                outbox.enqueue(
                    conn,
                    channel=channel,
                    parent_key=key,
                    payload={"text": describe(window, "⬆️ Worse:"), "reply_broadcast": True},
                )
        elif current is not None and step.action == "recover":
            store.close(conn, current.id, now, step.healthy_since)
            if channel:
                key = keys.incident(current.id)
                text = recovered(window)
                outbox.enqueue(conn, channel=channel, parent_key=key, payload={"text": text, "reply_broadcast": True})
                was = current.details.get("text", "")
                outbox.enqueue(
                    conn, channel=channel, method="chat.update", parent_key=key, payload={"text": ab.resolved_text(was)}
                )
        elif current is not None and step.healthy_since != current.healthy_since:
            store.health(conn, current.id, step.healthy_since, now)
        if step.action != "none":
            audit.record(
                conn,
                actor="system",
                surface="worker",
                action=f"incident.{step.action}",
                subject=kind,
                details={"rate": window.rate, "attempts": window.attempts},
                at=now,
            )
        return step.action


def report_key_problem(pool: ConnectionPool, settings: Settings, kind: str, now: datetime) -> None:
    """Stripe said our key is wrong or lacks a permission: alert at once, once per incident."""
    channel = _channel(settings, "alerts", None)
    with db.transaction(pool) as conn:
        store.serialize(conn, "stripe_key")
        current = store.open_incident(conn, "stripe_key")
        if current is not None:
            store.seen(conn, current.id, now)
            return
        incident_id = store.open_new(conn, "stripe_key", None, now, {"kind": kind})
        if incident_id is not None and channel:
            outbox.enqueue(
                conn,
                channel=channel,
                message_key=keys.incident(incident_id),
                payload={"text": ab.key_problem_text(kind)},
            )
            ALERTS.labels("stripe_key").inc()
        audit.record(
            conn,
            actor="stripe",
            surface="system",
            action="incident.open",
            subject="stripe_key",
            details={"kind": kind},
            at=now,
        )


def _close_key_incident(pool: ConnectionPool, settings: Settings, now: datetime) -> bool:
    """A key incident ends once a full window has passed without the error."""
    with db.transaction(pool) as conn:
        store.serialize(conn, "stripe_key")
        current = store.open_incident(conn, "stripe_key")
        if current is None or now - current.last_seen_at < settings.failure_rate_window:
            return False
        store.close(conn, current.id, now, current.last_seen_at)
        channel = _channel(settings, "alerts", None)
        if channel:
            outbox.enqueue(
                conn,
                channel=channel,
                parent_key=keys.incident(current.id),
                payload={"text": ab.KEY_RECOVERED, "reply_broadcast": True},
            )
        return True
