"""Payouts: kept for reconciliation (a paid one is summed by the worker) and alerted to on-call when they fail."""

from __future__ import annotations

from typing import Any

import psycopg

from handlers.registry import EventContext, handles
from services import payouts


@handles("payout.paid", "payout.failed")
def on_payout(conn: psycopg.Connection, payout: dict[str, Any], ctx: EventContext) -> None:
    """A payout paid or failed."""
    payouts.payout_changed(
        conn,
        ctx.settings,
        payout,
        account=ctx.account,
        observed_at=ctx.observed_at,
        event_id=ctx.event_id,
        event_type=ctx.event_type,
        now=ctx.now,
    )
