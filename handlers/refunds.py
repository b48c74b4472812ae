"""Refunds, wherever they were made; those made outside the bot go to the refunds feed."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import psycopg

from domain import stripe_mapping as sm
from domain.models import Refund
from domain.priority import ROUTINE
from handlers.registry import EventContext, audit_sync, handles
from messages import blocks, keys
from services import hooks, refund_requests
from store import outbox, requests
from store import payments as store


def apply_refund(conn: psycopg.Connection, obj: dict[str, Any], ctx: EventContext) -> None:
    """Merge a refund snapshot; audit it, and tell the request's thread or the feed what happened.

    Whether a refund was announced is its own fact (its thread moved, its feed message exists), not a
    side effect of this snapshot being newer: a lookup may have stored the refund before its webhook.
    """
    refund = sm.refund_from_stripe(obj, account=ctx.account, observed_at=ctx.observed_at)
    req = requests.made(conn, refund, sm.refund_request_key(obj))
    if req is not None:
        refund = replace(refund, request_id=req.id)
    saved = store.save_refund(conn, refund)
    current = saved.after or saved.before or refund
    if saved.after is not None:  # refund.succeeded / refund.failed / payment.fully_refunded hooks
        hooks.refund_changed(conn, ctx.settings, saved.before, saved.after, now=ctx.now)
    if saved.after is not None:
        audit_sync(
            conn,
            ctx,
            saved,
            "refund.synced",
            current.id,
            current.charge_id,
            current.payment_intent_id,
            amount=current.amount,
            failure_reason=current.failure_reason,
        )
    if req is not None:
        # Made by the bot: the request's own thread follows it (a guarded update: told once), not the feed.
        refund_requests.follow(conn, ctx.settings, req, current, now=ctx.now, surface="webhook")
        return
    channel = ctx.settings.refunds_feed_channel
    if channel:
        _announce(conn, channel, saved.before if saved.changed else current, current, ctx)


def _announce(conn: psycopg.Connection, channel: str, before: Refund | None, after: Refund, ctx: EventContext) -> None:
    view = store.payment_view(conn, after.payment_intent_id or after.charge_id or "")
    message = blocks.refund_feed_message(after, view)
    key = keys.feed(after.id)
    # The feed is routine: after a burst of refunds it waits while alerts and approvals go out.
    if not outbox.exists(conn, key):
        outbox.enqueue(conn, channel=channel, payload=message, message_key=key, priority=ROUTINE)
        return
    if before is None or before.status == after.status:
        return
    outbox.enqueue(conn, channel=channel, method="chat.update", payload=message, parent_key=key, priority=ROUTINE)
    reply = blocks.refund_status_reply(before, after)
    outbox.enqueue(conn, channel=channel, payload=reply, parent_key=key, priority=ROUTINE)


@handles("refund.created", "refund.updated", "refund.failed", "charge.refund.updated")
def on_refund(conn: psycopg.Connection, refund: dict[str, Any], ctx: EventContext) -> None:
    """A refund snapshot."""
    apply_refund(conn, refund, ctx)
