"""Disputes and inquiries: kept current for lookups, with an alert whose thread follows each one."""

from __future__ import annotations

from typing import Any

import psycopg

from domain import stripe_mapping as sm
from handlers.registry import EventContext, audit_sync, handles
from services import oncall
from store import payments as store


@handles(
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
)
def on_dispute(conn: psycopg.Connection, obj: dict[str, Any], ctx: EventContext) -> None:
    """A dispute snapshot (dp_ or du_, chargebacks and inquiries)."""
    saved = store.save_dispute(conn, sm.dispute_from_stripe(obj, account=ctx.account, observed_at=ctx.observed_at))
    if saved.changed:
        after = saved.after
        audit_sync(
            conn,
            ctx,
            saved,
            "dispute.synced",
            after.id,
            after.charge_id,
            after.payment_intent_id,
            amount=after.amount,
            reason=after.reason,
        )
    current = saved.after or saved.before
    if current is not None:
        oncall.dispute_changed(
            conn,
            ctx.settings,
            saved.before,
            saved.after,
            current,
            event_type=ctx.event_type,
            event_id=ctx.event_id,
            now=ctx.now,
        )
