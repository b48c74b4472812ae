"""Connect accounts: account.updated, the platform's application authorized or deauthorized, capabilities."""

from __future__ import annotations

from typing import Any

import psycopg

from handlers.registry import EventContext, handles
from services import connect


@handles("account.updated")
def on_account(conn: psycopg.Connection, obj: dict[str, Any], ctx: EventContext) -> None:
    """An account snapshot: charges or payouts disabled, requirements past due."""
    connect.account_updated(conn, ctx.settings, obj, event_id=ctx.event_id, observed_at=ctx.observed_at, now=ctx.now)


@handles("account.application.authorized", "account.application.deauthorized")
def on_application(conn: psycopg.Connection, obj: dict[str, Any], ctx: EventContext) -> None:
    """The account connected to, or disconnected from, the platform (the object is the application)."""
    if not ctx.account:
        return  # not about a connected account
    connect.connection_changed(
        conn,
        ctx.settings,
        ctx.account,
        connected=ctx.event_type == "account.application.authorized",
        event_id=ctx.event_id,
        observed_at=ctx.observed_at,
        now=ctx.now,
    )


@handles("capability.updated")
def on_capability(conn: psycopg.Connection, obj: dict[str, Any], ctx: EventContext) -> None:
    """A capability's status and requirements."""
    connect.capability_updated(
        conn, ctx.settings, obj, ctx.account, event_id=ctx.event_id, observed_at=ctx.observed_at, now=ctx.now
    )
