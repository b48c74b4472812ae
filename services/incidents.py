"""Incidents told everywhere at once: the Slack alert mentioning on-call, the PagerDuty page, the
outgoing hook; acknowledged from Slack, escalated once, resolved together.

Every step is written in the transaction of the incident change (Slack outbox, PagerDuty outbox,
hook outbox), each under a logical key, so a second worker or a retry never says it twice. Any
incident kind can use it: the rate incidents here, the event backlog, reconciliation.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from domain.alerts import channel_for
from domain.escalation import ESCALATED_SEVERITY, PAGE_SEVERITY
from messages import alerts as ab
from messages import keys
from messages import oncall as on
from services import hooks, paging
from settings import Settings
from store import alerts as store
from store import audit, db, outbox

log = logging.getLogger(__name__)


def channel(settings: Settings, account: str | None) -> str | None:
    """Where an incident is told: the alerts channel, or its Connect account's route."""
    return channel_for("alerts", account, settings.alert_routes, {"alerts": settings.alerts_channel})


def pages(inc: store.OpenIncident, settings: Settings) -> bool:
    """Whether this incident pages: everything does, except a key that only lacks a permission.

    A missing permission limits what the desk can read (lookups say so in place); it is told in
    Slack, but nobody is woken for it.
    """
    if not settings.pagerduty_routing_key:
        return False
    return not (inc.kind == "stripe_key" and (inc.details or {}).get("kind") == "permission")


def escalation_key(inc: store.OpenIncident) -> str:
    """The PagerDuty alert of the escalation: its own, so it notifies even when the first was acknowledged."""
    return f"{inc.dedup_key}-escalated"


def _hook_data(inc: store.OpenIncident, summary: str, **more: Any) -> dict[str, Any]:
    return {
        "id": inc.dedup_key,
        "kind": inc.kind,
        "account": inc.account,
        "summary": summary,
        "opened_at": inc.opened_at.isoformat(),
        **more,
    }


def message(inc: store.OpenIncident, settings: Settings, text: str) -> dict:
    """The incident's alert as it should look now."""
    return on.incident_message(
        text,
        inc.id,
        mention=ab.mention(settings.oncall_group),
        acknowledged_by=inc.acknowledged_by,
        escalated_to=(ab.mention(settings.escalation_group) or "everyone") if inc.escalated_at else None,
        paged=pages(inc, settings),
    )


def opened(conn: psycopg.Connection, settings: Settings, incident_id: int, text: str, *, now: datetime) -> None:
    """An incident opened: the Slack alert (on-call mentioned, *Acknowledge*), the page, the hook."""
    inc = store.incident(conn, incident_id)
    if inc is None:
        return
    where = channel(settings, inc.account)
    if where:
        outbox.enqueue(conn, channel=where, message_key=keys.incident(inc.id), payload=message(inc, settings, text))
    page_incident(conn, settings, inc.id, "open", summary=text, now=now)


def worse(
    conn: psycopg.Connection, settings: Settings, incident_id: int, text: str, reply: str, *, now: datetime
) -> None:
    """An incident got clearly worse: the alert updated in place, a broadcast reply, the page updated."""
    inc = store.incident(conn, incident_id)
    if inc is None:
        return
    where = channel(settings, inc.account)
    if where:
        key = keys.incident(inc.id)
        outbox.enqueue(conn, channel=where, method="chat.update", parent_key=key, payload=message(inc, settings, text))
        outbox.enqueue(conn, channel=where, parent_key=key, payload={"text": reply, "reply_broadcast": True})
    page_incident(conn, settings, inc.id, "worse", summary=text, now=now)


def resolved(
    conn: psycopg.Connection, settings: Settings, incident_id: int, note: str, was: str | None, *, now: datetime
) -> None:
    """An incident is over (close it first): the recovery note, the alert struck through, the page resolved."""
    inc = store.incident(conn, incident_id)
    if inc is None:
        return
    where = channel(settings, inc.account)
    if where:
        key = keys.incident(inc.id)
        outbox.enqueue(conn, channel=where, parent_key=key, payload={"text": note, "reply_broadcast": True})
        outbox.enqueue(conn, channel=where, method="chat.update", parent_key=key, payload=on.resolved_message(was))
    page_incident(conn, settings, inc.id, "resolve", summary=note, now=now)


def page_incident(
    conn: psycopg.Connection, settings: Settings, incident_id: int, step: str, *, summary: str, now: datetime
) -> None:
    """The paging step of an incident change: 'open', 'worse', 'escalate', 'acknowledge' or 'resolve'.

    Queues the PagerDuty event (when configured and the incident pages) and the outgoing hook
    (incident.opened, .escalated, .resolved), in the caller's transaction.
    """
    inc = store.incident(conn, incident_id)
    if inc is None:
        return
    plain = on.page_summary(summary)
    group = inc.account or "platform"
    details = {"kind": inc.kind, "account": inc.account, "incident": inc.id, "opened_at": inc.opened_at.isoformat()}
    if pages(inc, settings):
        if step in {"open", "worse"}:
            paging.trigger(
                conn,
                settings,
                dedup_key=inc.dedup_key,
                step_key=f"{inc.dedup_key}:{step}:{now.isoformat()}",
                summary=plain,
                severity=PAGE_SEVERITY,
                component=inc.kind,
                group=group,
                details=details,
                now=now,
            )
        elif step == "escalate":
            paging.trigger(
                conn,
                settings,
                dedup_key=escalation_key(inc),
                step_key=f"{escalation_key(inc)}:open",
                summary=f"Escalated: {plain}",
                severity=ESCALATED_SEVERITY,
                component=inc.kind,
                group=group,
                details={**details, "escalated": True},
                now=now,
            )
        elif step in {"acknowledge", "resolve"}:
            keys_to_settle = [inc.dedup_key] + ([escalation_key(inc)] if inc.escalated_at else [])
            for dedup_key in keys_to_settle:
                paging.settle(conn, settings, action=step, dedup_key=dedup_key, step_key=f"{dedup_key}:{step}", now=now)
    hook = {"open": "incident.opened", "escalate": "incident.escalated", "resolve": "incident.resolved"}.get(step)
    if hook:
        hooks.emit(conn, settings, hook, f"{hook}:{inc.dedup_key}", _hook_data(inc, plain), now=now)


def acknowledge(pool: ConnectionPool, settings: Settings, incident_id: int, user: str, now: datetime) -> str:
    """Someone clicked *Acknowledge*: record it once, acknowledge the page, update the alert; returns the answer."""
    with db.transaction(pool) as conn:
        if not store.acknowledge(conn, incident_id, user, now):
            inc = store.incident(conn, incident_id)
            return on.acknowledge_answer(done=False, by=inc.acknowledged_by if inc else None)
        inc = store.incident(conn, incident_id)
        if inc is None:  # pragma: no cover - acknowledged in this very transaction
            return on.acknowledge_answer(done=False, by=None)
        audit.record(
            conn,
            actor=user,
            surface="slack",
            action="incident.acknowledged",
            subject=f"{inc.kind}:{inc.id}",
            details={"account": inc.account},
            at=now,
        )
        _note_step(
            conn, settings, inc, "acknowledged", {"text": on.acknowledged_note(user, paged=pages(inc, settings))}
        )
        page_incident(conn, settings, inc.id, "acknowledge", summary="acknowledged", now=now)
    return on.acknowledge_answer(done=True, by=user)


def _note_step(conn: psycopg.Connection, settings: Settings, inc: store.OpenIncident, step: str, note: dict) -> None:
    """Refresh an incident's alert and add a step's note to its thread (once per step, whoever retries)."""
    where = channel(settings, inc.account)
    if not where:
        return
    key = keys.incident(inc.id)
    text = (inc.details or {}).get("text") or ""
    if text:
        outbox.enqueue(conn, channel=where, method="chat.update", parent_key=key, payload=message(inc, settings, text))
    outbox.enqueue(conn, channel=where, parent_key=key, message_key=keys.incident_step(inc.id, step), payload=note)


def escalate_due(pool: ConnectionPool, settings: Settings, now: datetime) -> list[int]:
    """Escalate, once each, the incidents open for INCIDENT_ESCALATE_MINUTES; returns their ids."""
    with db.connection(pool) as conn:
        due = store.due_escalation(conn, now - settings.incident_escalate)
    done = []
    minutes = int(settings.incident_escalate.total_seconds() // 60)
    for incident_id in due:
        with db.transaction(pool) as conn:
            if not store.escalate(conn, incident_id, now):
                continue  # recovered meanwhile, or another worker escalated it
            inc = store.incident(conn, incident_id)
            if inc is None:  # pragma: no cover - escalated in this very transaction
                continue
            text = (inc.details or {}).get("text") or ""
            note = on.escalation_note(ab.mention(settings.escalation_group), minutes, paged=pages(inc, settings))
            _note_step(conn, settings, inc, "escalated", note)
            page_incident(conn, settings, inc.id, "escalate", summary=text or inc.kind, now=now)
            audit.record(
                conn,
                actor="system",
                surface="worker",
                action="incident.escalated",
                subject=f"{inc.kind}:{inc.id}",
                details={"account": inc.account, "minutes": minutes},
                at=now,
            )
            done.append(incident_id)
    return done


def problem(
    conn: psycopg.Connection, settings: Settings, kind: str, text: str, *, now: datetime, account: str | None = None
) -> bool:
    """A condition that is an incident for as long as it lasts (reconciliation could not run, …).

    Opens it, alerts and pages once; while it stays open, later reports only note it was seen again.
    Returns whether it opened now.
    """
    store.serialize(conn, f"{kind}:{account}" if account else kind)
    current = store.open_incident(conn, kind, account)
    if current is not None:
        store.seen(conn, current.id, now)
        return False
    incident_id = store.open_new(conn, kind, None, now, {"text": text}, account)
    if incident_id is None:
        return False
    opened(conn, settings, incident_id, text, now=now)
    return True


def cleared(
    conn: psycopg.Connection, settings: Settings, kind: str, note: str, *, now: datetime, account: str | None = None
) -> bool:
    """The condition `problem` reported is gone: close the incident, say so, resolve the page."""
    store.serialize(conn, f"{kind}:{account}" if account else kind)
    current = store.open_incident(conn, kind, account)
    if current is None:
        return False
    store.close(conn, current.id, now, now)
    resolved(conn, settings, current.id, note, (current.details or {}).get("text"), now=now)
    return True
