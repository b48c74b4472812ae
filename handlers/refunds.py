"""Refunds, wherever they were made; those made outside the bot go to the refunds feed."""

from __future__ import annotations

from typing import Any

import psycopg

from bot import blocks
from domain import stripe_mapping as sm
from domain.models import Refund
from handlers.registry import EventContext, audit_sync, handles
from services import refund_requests
from store import outbox, requests
from store import payments as store

REQUEST_OF_REFUND = "SELECT id FROM refund_requests WHERE id = %(request_id)s OR stripe_refund_id = %(refund_id)s"


def feed_key(refund_id: str) -> str:
    """The outbox key of a refund's feed message (replies and updates hang off it)."""
    return f"feed:{refund_id}"


def apply_refund(conn: psycopg.Connection, obj: dict[str, Any], ctx: EventContext) -> None:
    """Merge a refund snapshot; audit it, and tell the feed when it was made outside the bot."""
    refund = sm.refund_from_stripe(obj, account=ctx.account, observed_at=ctx.observed_at)
    saved = store.save_refund(conn, refund)
    if not saved.changed:
        return
    after, before = saved.after, saved.before
    audit_sync(conn, ctx, saved, "refund.synced", after.id, after.charge_id, after.payment_intent_id,
               amount=after.amount, failure_reason=after.failure_reason)
    request_id = _request_of(conn, after)
    if request_id is not None:
        # Made by the bot: the request's own thread follows it, not the feed.
        req = requests.get(conn, request_id)
        if req is not None:
            refund_requests.follow(conn, ctx.settings, req, after, now=ctx.now, surface="webhook")
        return
    channel = ctx.settings.refunds_feed_channel
    if channel:
        _announce(conn, channel, before, after, ctx)


def _request_of(conn: psycopg.Connection, refund: Refund) -> int | None:
    row = conn.execute(REQUEST_OF_REFUND, {"request_id": refund.request_id, "refund_id": refund.id}).fetchone()
    return row[0] if row else None


def _announce(conn: psycopg.Connection, channel: str, before: Refund | None, after: Refund, ctx: EventContext) -> None:
    view = store.payment_view(conn, after.payment_intent_id or after.charge_id or "")
    message = blocks.refund_feed_message(after, view)
    key = feed_key(after.id)
    if outbox.message_ts(conn, key) is None and not _queued(conn, key):
        outbox.enqueue(conn, channel=channel, payload=message, message_key=key)
        return
    if before is not None and before.status == after.status:
        return
    outbox.enqueue(conn, channel=channel, method="chat.update", payload=message, parent_key=key)
    outbox.enqueue(conn, channel=channel, payload=blocks.refund_status_reply(before, after), parent_key=key)


def _queued(conn: psycopg.Connection, key: str) -> bool:
    return conn.execute("SELECT 1 FROM slack_outbox WHERE message_key = %(k)s", {"k": key}).fetchone() is not None


@handles("refund.created", "refund.updated", "refund.failed", "charge.refund.updated")
def on_refund(conn: psycopg.Connection, refund: dict[str, Any], ctx: EventContext) -> None:
    """A refund snapshot."""
    apply_refund(conn, refund, ctx)
