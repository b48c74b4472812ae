"""Radar: early fraud warnings (with a one-click refund) and manual reviews."""

from __future__ import annotations

from typing import Any

import psycopg

from domain import stripe_mapping as sm
from handlers.registry import EventContext, handles
from services import oncall


@handles("radar.early_fraud_warning.created", "radar.early_fraud_warning.updated")
def on_early_fraud_warning(conn: psycopg.Connection, efw: dict[str, Any], ctx: EventContext) -> None:
    """An early fraud warning: alert on-call before it becomes a dispute."""
    warning = sm.fraud_warning_from_stripe(efw, account=ctx.account, observed_at=ctx.observed_at)
    oncall.fraud_warning(conn, ctx.settings, warning, observed_at=ctx.observed_at, event_id=ctx.event_id, now=ctx.now)


@handles("review.opened", "review.closed")
def on_review(conn: psycopg.Connection, review: dict[str, Any], ctx: EventContext) -> None:
    """A Radar review opened or closed: a note in the alerts channel."""
    opened = ctx.event_type == "review.opened"
    oncall.review(
        conn, ctx.settings, sm.review_from_stripe(review), opened=opened, account=ctx.account, event_id=ctx.event_id
    )
