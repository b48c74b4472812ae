"""Outgoing hooks: what the desk sees, told to other systems, signed per the Standard Webhooks spec.

A message is queued in the transaction of the change it tells, once per endpoint that wants its
type, under an id derived from the fact (so a replayed Stripe event queues nothing new), and sent by
the worker at least once: retried with backoff, dead-lettered after OUTGOING_WEBHOOK_MAX_ATTEMPTS,
always with the same webhook-id so receivers dedupe.
"""

from __future__ import annotations

import json
import logging
import random
from datetime import datetime
from typing import Any

import psycopg
import requests
from psycopg_pool import ConnectionPool
from standardwebhooks.webhooks import Webhook

from domain.clock import utcnow
from domain.escalation import hook_outcome
from domain.hooks import endpoint_label, envelope, message_id
from domain.models import Dispute, PaymentView, Refund
from domain.retry import backoff, gives_up
from settings import Settings
from store import db, hooks
from store import payments as payment_store

log = logging.getLogger(__name__)

RETRY_BASE_SECONDS = 5.0
RETRY_CAP_SECONDS = 3600.0
TIMEOUT_SECONDS = 10.0
USER_AGENT = "refund-desk-webhooks/1"


def emit(
    conn: psycopg.Connection, settings: Settings, event_type: str, fact: str, data: dict[str, Any], *, now: datetime
) -> int:
    """Queue a message of `event_type` for every endpoint that wants it; returns how many were queued."""
    wanting = [e for e in settings.outgoing_webhooks if e.wants(event_type)]
    if not wanting:
        return 0
    payload = envelope(event_type, data, now)
    msg_id = message_id(fact)
    return sum(
        hooks.enqueue(conn, message_id=msg_id, endpoint=e.url, event_type=event_type, payload=payload, now=now)
        for e in wanting
    )


class HookSender:
    """Signs and POSTs messages (one HTTP session per process)."""

    def __init__(self, secret: str, *, timeout: float = TIMEOUT_SECONDS) -> None:
        self.signer = Webhook(secret)
        self.timeout = timeout
        self.http = requests.Session()

    def send(self, item: hooks.Queued) -> tuple[int | None, str]:
        """(HTTP status or None, what went wrong); the body is signed exactly as sent, as of now.

        Receivers refuse a timestamp more than five minutes off their clock, so a retry is signed
        anew when it goes out, never when it was queued.
        """
        now = utcnow()
        body = json.dumps(item.payload, separators=(",", ":"), ensure_ascii=False)
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": item.message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self.signer.sign(item.message_id, now, body),
        }
        try:
            response = self.http.post(
                item.endpoint, data=body.encode(), headers=headers, timeout=self.timeout, allow_redirects=False
            )
        except requests.RequestException as exc:
            return None, type(exc).__name__
        return response.status_code, f"HTTP {response.status_code}"


def build_sender(settings: Settings) -> HookSender | None:
    """The process's hook sender, or None when no endpoint is configured."""
    if not settings.outgoing_webhooks or not settings.outgoing_webhook_secret:
        return None
    return HookSender(settings.outgoing_webhook_secret)


def deliver_next(pool: ConnectionPool, sender: HookSender, settings: Settings, *, now: datetime) -> bool:
    """Send the next message due; False when none is."""
    with db.transaction(pool) as conn:
        item = hooks.claim(conn, now)
        if item is None:
            return False
        status, said = sender.send(item)
        where = endpoint_label(item.endpoint)
        if hook_outcome(status) == "sent":
            hooks.sent(conn, item, now)
            return True
        attempts = item.attempts + 1
        if gives_up(attempts, settings.outgoing_webhook_max_attempts):
            log.error(
                "hook %s (%s) to %s failed %d times (%s); dead-lettered",
                item.message_id,
                item.type,
                where,
                attempts,
                said,
            )
            hooks.dead(conn, item, error=said)
            return True
        delay = backoff(attempts, base=RETRY_BASE_SECONDS, cap=RETRY_CAP_SECONDS, jitter=random.random())  # noqa: S311
        log.warning("hook %s to %s failed (%s); retry in %.0f s", item.message_id, where, said, delay.total_seconds())
        hooks.retry(conn, item, at=now + delay, error=said)
        return True


# --- what the desk tells other systems ------------------------------------------------------------------

REFUND_FINAL = {"succeeded": "refund.succeeded", "failed": "refund.failed"}
DISPUTE_CLOSED = frozenset({"won", "lost", "warning_closed", "prevented"})


def refund_changed(
    conn: psycopg.Connection, settings: Settings, before: Refund | None, after: Refund, *, now: datetime
) -> None:
    """refund.succeeded / refund.failed when a refund reaches that status (once per refund and status)."""
    event_type = REFUND_FINAL.get(after.status)
    if event_type is None or (before is not None and before.status == after.status):
        return
    data = {
        "refund": after.id,
        "payment_intent": after.payment_intent_id,
        "charge": after.charge_id,
        "account": after.account,
        "amount": after.amount,
        "currency": after.currency,
        "reason": after.reason,
        "failure_reason": after.failure_reason,
        "request": after.request_id,
    }
    emit(conn, settings, event_type, f"{event_type}:{after.id}", data, now=now)
    payment_check(conn, settings, after.payment_intent_id or after.charge_id, now=now)


def payment_check(conn: psycopg.Connection, settings: Settings, payment_key: str | None, *, now: datetime) -> None:
    """payment.fully_refunded, once, when what succeeded in refunds reaches what was captured."""
    if not payment_key or not any(e.wants("payment.fully_refunded") for e in settings.outgoing_webhooks):
        return
    view = payment_store.payment_view(conn, payment_key)
    if view is None or not fully_refunded(view):
        return
    p = view.payment
    data = {
        "payment": p.id,
        "payment_intent": p.payment_intent_id,
        "charge": p.charge_id,
        "account": p.account,
        "amount_captured": p.amount_captured,
        "currency": p.currency,
        "refunds": [r.id for r in view.refunds if r.status == "succeeded"],
    }
    emit(conn, settings, "payment.fully_refunded", f"payment.fully_refunded:{p.id}", data, now=now)


def dispute_changed(
    conn: psycopg.Connection, settings: Settings, before: Dispute | None, after: Dispute | None, *, now: datetime
) -> None:
    """dispute.opened the first time a dispute is stored; dispute.closed when it reaches a final status."""
    if after is None:
        return
    data = {
        "dispute": after.id,
        "payment_intent": after.payment_intent_id,
        "charge": after.charge_id,
        "account": after.account,
        "amount": after.amount,
        "currency": after.currency,
        "reason": after.reason,
        "status": after.status,
        "evidence_due_by": after.evidence_due_by.isoformat() if after.evidence_due_by else None,
    }
    if before is None:
        emit(conn, settings, "dispute.opened", f"dispute.opened:{after.id}", data, now=now)
    if after.status in DISPUTE_CLOSED and (before is None or before.status not in DISPUTE_CLOSED):
        emit(conn, settings, "dispute.closed", f"dispute.closed:{after.id}", data, now=now)


def fully_refunded(view: PaymentView) -> bool:
    """Whether succeeded refunds cover everything captured.

    Only refunds that succeeded count: the charge's `amount_refunded` already includes a pending
    refund, which may still fail (charge.refunded arrives before the refund settles).
    """
    p = view.payment
    succeeded = sum(r.amount for r in view.refunds if r.status == "succeeded")
    return p.amount_captured > 0 and succeeded >= p.amount_captured
