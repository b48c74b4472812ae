"""Payment outcomes: charges and payment intents update the payment record."""

from __future__ import annotations

from typing import Any

import psycopg

from domain import stripe_mapping as sm
from handlers.refunds import apply_refund
from handlers.registry import EventContext, audit_sync, handles
from services import hooks
from store import alerts
from store import payments as store


def _audit_payment(conn: psycopg.Connection, saved: store.Saved, ctx: EventContext) -> None:
    after = saved.after
    audit_sync(
        conn,
        ctx,
        saved,
        "payment.synced",
        after.payment_intent_id,
        after.charge_id,
        amount_captured=after.amount_captured,
        amount_refunded=after.amount_refunded,
    )


@handles(
    "charge.succeeded",
    "charge.failed",
    "charge.captured",
    "charge.pending",
    "charge.updated",
    "charge.expired",
    "charge.refunded",
)
def on_charge(conn: psycopg.Connection, charge: dict[str, Any], ctx: EventContext) -> None:
    """A charge snapshot; old API versions also embed its refunds, which are applied too."""
    saved = store.save_payment(conn, sm.payment_from_charge(charge, account=ctx.account, observed_at=ctx.observed_at))
    if saved.changed:
        _audit_payment(conn, saved, ctx)
    if ctx.event_type in {"charge.succeeded", "charge.failed"}:
        alerts.record_outcome(
            conn,
            charge_id=charge["id"],
            account=ctx.account,
            succeeded=ctx.event_type == "charge.succeeded",
            decline_code=sm.decline_code(charge),
            at=ctx.observed_at,
        )
    embedded = (charge.get("refunds") or {}).get("data") if isinstance(charge.get("refunds"), dict) else None
    for refund in embedded or []:
        apply_refund(conn, refund, ctx)
    if ctx.event_type == "charge.refunded":
        hooks.payment_check(conn, ctx.settings, saved.after.id if saved.after else None, now=ctx.now)


@handles(
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "payment_intent.processing",
    "payment_intent.requires_action",
    "payment_intent.amount_capturable_updated",
)
def on_payment_intent(conn: psycopg.Connection, pi: dict[str, Any], ctx: EventContext) -> None:
    """A payment intent snapshot (with its charge when the API version embeds it)."""
    payment = sm.payment_from_payment_intent(pi, account=ctx.account, observed_at=ctx.observed_at)
    saved = store.save_payment(conn, payment)
    if saved.changed:
        _audit_payment(conn, saved, ctx)
    error = pi.get("last_payment_error") or {}
    charge_id = sm.ref_id(error.get("charge")) or payment.charge_id
    if charge_id and ctx.event_type in {"payment_intent.succeeded", "payment_intent.payment_failed"}:
        # The same attempt may also arrive as charge.*; the charge id counts it once.
        alerts.record_outcome(
            conn,
            charge_id=charge_id,
            account=ctx.account,
            succeeded=ctx.event_type == "payment_intent.succeeded",
            decline_code=sm.decline_code_of_error(error),
            at=ctx.observed_at,
        )
