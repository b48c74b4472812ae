"""One registry of event handlers by Stripe event type; a typo in a type fails at import."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from settings import Settings
from store import audit

# Event types we may handle (Stripe's names, https://docs.stripe.com/api/events/types).
KNOWN_TYPES = frozenset(
    {
        "charge.succeeded",
        "charge.failed",
        "charge.captured",
        "charge.pending",
        "charge.updated",
        "charge.expired",
        "charge.refunded",
        "charge.refund.updated",
        "refund.created",
        "refund.updated",
        "refund.failed",
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.canceled",
        "payment_intent.processing",
        "payment_intent.requires_action",
        "payment_intent.amount_capturable_updated",
        "payment_intent.created",
        "payment_intent.partially_funded",
        "charge.dispute.created",
        "charge.dispute.updated",
        "charge.dispute.closed",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.funds_reinstated",
        "radar.early_fraud_warning.created",
        "radar.early_fraud_warning.updated",
        "review.opened",
        "review.closed",
        # Payouts (handlers/payouts.py): reconciliation, and failures to on-call
        "payout.paid",
        "payout.failed",
        # Connect accounts (handlers/accounts.py)
        "account.updated",
        "account.application.authorized",
        "account.application.deauthorized",
        "capability.updated",
    }
)


@dataclass(frozen=True, slots=True)
class EventContext:
    """What a handler knows about the event besides its object."""

    event_id: str
    event_type: str
    account: str | None
    observed_at: datetime  # the event's `created`: when Stripe's snapshot was true
    now: datetime
    settings: Settings


def audit_sync(
    conn: psycopg.Connection, ctx: EventContext, saved: Any, action: str, *ids: str | None, **details: Any
) -> None:
    """Audit a record that an event changed: who (Stripe), what, from which event; once per event and record."""
    after, before = saved.after, saved.before
    audit.record(
        conn,
        actor="stripe",
        surface="webhook",
        action=action,
        subject=after.id,
        stripe_ids=[i for i in (*ids, ctx.event_id) if i],
        details={
            "event": ctx.event_type,
            "status": after.status,
            "status_before": before.status if before else None,
            "currency": after.currency,
            **details,
        },
        cause=f"{ctx.event_id}:{after.id}",
        at=ctx.now,
    )


Handler = Callable[[psycopg.Connection, dict[str, Any], EventContext], None]
HANDLERS: dict[str, Handler] = {}


def handles(*types: str) -> Callable[[Handler], Handler]:
    """Register a handler for event types; refuses unknown or already handled types."""

    def register(fn: Handler) -> Handler:
        for event_type in types:
            if event_type not in KNOWN_TYPES:
                raise ValueError(f"{fn.__name__}: unknown Stripe event type {event_type!r}")
            if event_type in HANDLERS:
                raise ValueError(f"{event_type} already handled by {HANDLERS[event_type].__name__}")
            HANDLERS[event_type] = fn
        return fn

    return register


def handler_for(event_type: str) -> Handler | None:
    """The handler of a type, or None: the event is stored and marked ignored."""
    return HANDLERS.get(event_type)
