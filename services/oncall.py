"""On-call: dispute alerts that follow each dispute, evidence reminders, early fraud warnings, Radar
reviews, and rate incidents (payment failures, webhook failures, a rejected Stripe key).

Everything posts through the outbox in the transaction of the change, and every alert has a
logical key, so a replayed event or a second worker never posts twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import psycopg
from psycopg_pool import ConnectionPool

from domain.alerts import Limits, Window, backlog_step, channel_for, incident_step, reminders_due
from domain.errors import NotFound
from domain.escalation import silence_step
from domain.models import Dispute, FraudWarning, PaymentView, Review
from domain.policy import refusal_to_refund
from domain.priority import ROUTINE, URGENT
from messages import alerts as ab
from messages import keys
from messages import oncall as on
from services import hooks, incidents
from services.metrics import ALERTS
from settings import Settings
from store import alerts as store
from store import audit, db, homes, outbox
from store import events as event_store
from store import payments as payment_store

log = logging.getLogger(__name__)


def _channel(settings: Settings, kind: str, account: str | None) -> str | None:
    defaults = {"disputes": settings.disputes_channel, "alerts": settings.alerts_channel}
    return channel_for(kind, account, settings.alert_routes, defaults)


def _view(conn: psycopg.Connection, payment_intent: str | None, charge: str | None) -> PaymentView | None:
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
    homes.mark_stale(conn, sections=["disputes"], now=now)  # on-call's Home tabs list open disputes
    hooks.dispute_changed(conn, settings, before, after, now=now)  # dispute.opened / dispute.closed
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
        homes.mark_stale(conn, sections=["disputes"], now=now)
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
                    # The alert's "in 3 days" was true when it was posted: say how long is left now.
                    _refresh_dispute_alert(conn, channel, dispute, now)
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
    _refresh_passed_deadlines(pool, settings, now)
    return sent


def _refresh_dispute_alert(conn: psycopg.Connection, channel: str, dispute: Dispute, now: datetime) -> None:
    """Render a dispute's alert again as of now (its relative deadline, its owner)."""
    view = _view(conn, dispute.payment_intent_id, dispute.charge_id)
    outbox.enqueue(
        conn,
        channel=channel,
        method="chat.update",
        parent_key=keys.dispute(dispute.id),
        payload=ab.dispute_message(dispute, view, now=now),
    )


def _refresh_passed_deadlines(pool: ConnectionPool, settings: Settings, now: datetime) -> int:
    """Once an evidence deadline passes with no evidence, the alert says so instead of "in 1 day"."""
    with db.connection(pool) as conn:
        passed = store.deadline_passed(conn, now)
    done = 0
    for dispute_id in passed:
        with db.transaction(pool) as conn:
            if not store.mark_reminded(conn, dispute_id, "passed", now):
                continue  # another worker did it
            dispute = _dispute(conn, dispute_id)
            channel = _channel(settings, "disputes", dispute.account)
            if channel and outbox.exists(conn, keys.dispute(dispute_id)):
                _refresh_dispute_alert(conn, channel, dispute, now)
                outbox.enqueue(
                    conn,
                    channel=channel,
                    parent_key=keys.dispute(dispute_id),
                    message_key=keys.dispute_refresh(dispute_id, "passed"),
                    payload={"text": on.deadline_passed_note(dispute.id)},
                )
            done += 1
    return done


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
    said += _check_account_rates(pool, settings, now)
    backlog = _check_backlog(pool, settings, now)
    if backlog != "none":
        said.append(f"event_backlog:{backlog}")
    if _close_key_incident(pool, settings, now):
        said.append("stripe_key:recover")
    # Last, so an incident that recovered in this round is not escalated.
    said += [f"escalate:{incident_id}" for incident_id in incidents.escalate_due(pool, settings, now)]
    return said


def _check_account_rates(pool: ConnectionPool, settings: Settings, now: datetime) -> list[str]:
    """Payment failure rates per Connect account, each routed to its account's alerts channel."""
    minutes = int(settings.failure_rate_window.total_seconds() // 60)
    rate = settings.failure_rate_threshold
    with db.connection(pool) as conn:
        accounts = store.rate_accounts(conn, "payment_failures", now - settings.failure_rate_window, now)
    said = []
    for account in accounts:

        def measure(conn: psycopg.Connection, since: datetime, until: datetime, account: str = account) -> Window:
            return store.account_payment_window(conn, account, since, until)

        def describe(w: Window, title: str, account: str = account) -> str:
            return ab.failure_rate_text(w, minutes, title=f"{title} `{account}`:")

        def recovered(w: Window, account: str = account) -> str:
            return ab.recovery_text(w, rate, minutes, what=f"payment failures on `{account}`")

        limits = _limits(settings, rate)
        action = _check_rate(pool, settings, "payment_failures", limits, measure, describe, recovered, now, account)
        if action != "none":
            said.append(f"payment_failures:{account}:{action}")
    return said


def _check_rate(
    pool: ConnectionPool,
    settings: Settings,
    kind: str,
    limits: Limits,
    measure: Callable[..., Window],
    describe: Callable[[Window, str], str],
    recovered: Callable[[Window], str],
    now: datetime,
    account: str | None = None,
) -> str:
    # Each step tells Slack (mentioning on-call), PagerDuty and the outgoing hooks at once.
    with db.transaction(pool) as conn:
        store.serialize(conn, f"{kind}:{account}" if account else kind)
        window: Window = measure(conn, now - limits.window, now)
        current = store.open_incident(conn, kind, account)
        step = incident_step(current.as_incident() if current else None, window, limits, now)
        if step.action == "open":
            text = describe(window, "🚨")
            details = {"attempts": window.attempts, "failures": window.failures, "text": text}
            incident_id = store.open_new(conn, kind, window.rate, now, details, account)
            if incident_id is not None:
                incidents.opened(conn, settings, incident_id, text, now=now)
                ALERTS.labels(kind).inc()
        elif current is not None and step.action == "worse":
            text = describe(window, "🚨 (worse)")
            store.notified(conn, current.id, window.rate, now, {"text": text})
            incidents.worse(conn, settings, current.id, text, describe(window, "⬆️ Worse:"), now=now)
        elif current is not None and step.action == "recover":
            store.close(conn, current.id, now, step.healthy_since)
            was = current.details.get("text", "")
            incidents.resolved(conn, settings, current.id, recovered(window), was, now=now)
        elif current is not None and step.healthy_since != current.healthy_since:
            store.health(conn, current.id, step.healthy_since, now)
        if step.action != "none":
            audit.record(
                conn,
                actor="system",
                surface="worker",
                action=f"incident.{step.action}",
                subject=f"{kind}:{account}" if account else kind,
                details={"rate": window.rate, "attempts": window.attempts, "account": account},
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
        text = ab.key_problem_text(kind)
        incident_id = store.open_new(conn, "stripe_key", None, now, {"kind": kind, "text": text})
        if incident_id is not None:
            incidents.opened(conn, settings, incident_id, text, now=now)
            if channel:
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
        incidents.resolved(conn, settings, current.id, ab.KEY_RECOVERED, current.details.get("text"), now=now)
        return True


def _check_backlog(pool: ConnectionPool, settings: Settings, now: datetime) -> str:
    """Urgent Stripe events waiting longer than BACKLOG_ALERT_SECONDS: one alert, one recovery."""
    limit = timedelta(seconds=settings.backlog_alert_seconds)
    minutes = int(settings.failure_rate_window.total_seconds() // 60)
    with db.transaction(pool) as conn:
        store.serialize(conn, "event_backlog")
        waiting = event_store.backlog(conn, now)
        urgent, routine = waiting.get(URGENT), waiting.get(ROUTINE)
        since = urgent.oldest_due_since if urgent else None
        waited = max(timedelta(0), now - since) if since else timedelta(0)
        current = store.open_incident(conn, "event_backlog")
        step = backlog_step(
            current.as_incident() if current else None,
            waited=waited,
            limit=limit,
            window=settings.failure_rate_window,
            now=now,
        )
        if step.action == "open":
            text = ab.backlog_text(waited, limit, urgent.due if urgent else 0, routine.due if routine else 0)
            details = {"waited_seconds": waited.total_seconds(), "text": text}
            incident_id = store.open_new(conn, "event_backlog", None, now, details)
            if incident_id is not None:
                incidents.opened(conn, settings, incident_id, text, now=now)
                ALERTS.labels("event_backlog").inc()
        elif current is not None and step.action == "recover":
            store.close(conn, current.id, now, step.healthy_since)
            note = ab.backlog_recovered_text(limit, minutes)
            incidents.resolved(conn, settings, current.id, note, current.details.get("text"), now=now)
        elif current is not None and step.healthy_since != current.healthy_since:
            store.health(conn, current.id, step.healthy_since, now)
        if step.action != "none":
            audit.record(
                conn,
                actor="system",
                surface="worker",
                action=f"incident.{step.action}",
                subject="event_backlog",
                details={"waited_seconds": waited.total_seconds()},
                at=now,
            )
        return step.action


# --- webhook delivery and silence (the worker's delivery check) -----------------------------------------


def check_delivery(
    pool: ConnectionPool,
    settings: Settings,
    *,
    undelivered: int,
    fetched: int,
    last_webhook: datetime | None,
    stripe_has_newer: bool,
    now: datetime,
) -> list[str]:
    """Incidents from what Stripe says of its deliveries: too many failed, or the endpoint went silent."""
    minutes = int(settings.failure_rate_window.total_seconds() // 60)
    # Every event Stripe could not deliver is a fact, not a sample: no minimum volume.
    limits = Limits(rate=settings.webhook_failure_threshold, min_attempts=1, window=settings.failure_rate_window)

    def measure(conn: psycopg.Connection, since: datetime, until: datetime) -> Window:
        # What Stripe created in the window (we hold them all now) against what it could not deliver.
        return Window(max(store.events_created(conn, since, until), undelivered), undelivered)

    def describe(w: Window, title: str) -> str:
        return on.delivery_text(w, minutes, fetched=fetched, title=title)

    def recovered(w: Window) -> str:
        return on.delivery_recovered(minutes)

    said = []
    action = _check_rate(pool, settings, "webhook_delivery", limits, measure, describe, recovered, now)
    if action != "none":
        said.append(f"webhook_delivery:{action}")
    action = _check_silence(pool, settings, last_webhook, stripe_has_newer, now)
    if action != "none":
        said.append(f"webhook_silence:{action}")
    return said


def _check_silence(
    pool: ConnectionPool, settings: Settings, last_webhook: datetime | None, stripe_has_newer: bool, now: datetime
) -> str:
    with db.transaction(pool) as conn:
        store.serialize(conn, "webhook_silence")
        current = store.open_incident(conn, "webhook_silence")
        step = silence_step(
            incident_open=current is not None,
            last_arrival=last_webhook,
            stripe_has_newer=stripe_has_newer,
            now=now,
            silence=settings.webhook_silence,
        )
        if step == "open" and last_webhook is not None:
            minutes = int(settings.webhook_silence.total_seconds() // 60)
            text = on.silence_text(last_webhook, minutes)
            incident_id = store.open_new(conn, "webhook_silence", None, now, {"text": text})
            if incident_id is not None:
                incidents.opened(conn, settings, incident_id, text, now=now)
                ALERTS.labels("webhook_silence").inc()
        elif step == "recover" and current is not None:
            store.close(conn, current.id, now, last_webhook)
            incidents.resolved(conn, settings, current.id, on.SILENCE_RECOVERED, current.details.get("text"), now=now)
        if step != "none":
            audit.record(
                conn,
                actor="system",
                surface="worker",
                action=f"incident.{step}",
                subject="webhook_silence",
                details={"last_webhook": last_webhook.isoformat() if last_webhook else None},
                at=now,
            )
        return step
