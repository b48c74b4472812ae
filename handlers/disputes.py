"""Disputes and inquiries: kept current so lookups show them (alerts come with the disputes issue)."""

from __future__ import annotations

from typing import Any

import psycopg

from domain import stripe_mapping as sm
from handlers.registry import EventContext, handles
from store import audit
from store import payments as store


@handles("charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed",
         "charge.dispute.funds_withdrawn", "charge.dispute.funds_reinstated")
def on_dispute(conn: psycopg.Connection, obj: dict[str, Any], ctx: EventContext) -> None:
    """A dispute snapshot (dp_ or du_, chargebacks and inquiries)."""
    saved = store.save_dispute(conn, sm.dispute_from_stripe(obj, account=ctx.account, observed_at=ctx.observed_at))
    if not saved.changed:
        return
    after, before = saved.after, saved.before
    audit.record(
        conn, actor="stripe", surface="webhook", action="dispute.synced", subject=after.id,
        stripe_ids=[i for i in (after.id, after.charge_id, after.payment_intent_id, ctx.event_id) if i],
        details={"event": ctx.event_type, "status": after.status, "status_before": before.status if before else None,
                 "amount": after.amount, "currency": after.currency, "reason": after.reason},
        cause=f"{ctx.event_id}:{after.id}", at=ctx.now,
    )
