"""Connect accounts: kept current from their events, on-call told when one can no longer take charges,
get payouts or use a capability, or was disconnected; and the platform's account list, so lookups can
try every account we have.

Each problem alerts once when it appears (in the account's routed alerts channel, on-call mentioned,
with Stripe's reason and what it still requires) and is noted once in that alert's thread when it
clears. Payouts that fail on connected accounts are reconciliation's (handlers/payouts.py).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from domain.alerts import channel_for
from domain.connect import (
    Account,
    account_from_stripe,
    capability_from_stripe,
    changes,
    merge_account,
    merge_capability,
    merge_connection,
)
from domain.errors import DeskError
from messages import alerts as ab
from messages import keys
from messages import oncall as on
from services.metrics import ALERTS
from services.stripe_gateway import StripeGateway
from settings import Settings
from store import accounts, audit, db, outbox

log = logging.getLogger(__name__)


def account_updated(
    conn: psycopg.Connection,
    settings: Settings,
    obj: dict[str, Any],
    *,
    event_id: str,
    observed_at: datetime,
    now: datetime,
) -> None:
    """An account snapshot (account.updated)."""
    incoming = account_from_stripe(obj, observed_at=observed_at)
    current, open_alerts = accounts.lock(conn, incoming.id)
    _apply(conn, settings, merge_account(current, incoming), open_alerts, event_id=event_id, now=now)


def connection_changed(
    conn: psycopg.Connection,
    settings: Settings,
    account_id: str,
    *,
    connected: bool,
    event_id: str,
    observed_at: datetime,
    now: datetime,
) -> None:
    """The platform's application was authorized or deauthorized on an account."""
    current, open_alerts = accounts.lock(conn, account_id)
    merged = merge_connection(current, connected=connected, at=observed_at)
    _apply(conn, settings, merged, open_alerts, event_id=event_id, now=now)


def capability_updated(
    conn: psycopg.Connection,
    settings: Settings,
    obj: dict[str, Any],
    account_id: str | None,
    *,
    event_id: str,
    observed_at: datetime,
    now: datetime,
) -> None:
    """A capability snapshot (capability.updated)."""
    owner, name, cap = capability_from_stripe(obj, observed_at=observed_at)
    account_id = owner or account_id
    if not account_id:
        return  # a capability of the platform itself: nothing of Connect's
    current, open_alerts = accounts.lock(conn, account_id)
    _apply(conn, settings, merge_capability(current, name, cap), open_alerts, event_id=event_id, now=now)


def _apply(
    conn: psycopg.Connection,
    settings: Settings,
    account: Account,
    open_alerts: dict[str, str],
    *,
    event_id: str,
    now: datetime,
) -> None:
    opened, cleared = changes(open_alerts, account)
    channel = channel_for("alerts", account.id, settings.alert_routes, {"alerts": settings.alerts_channel})
    alerts = dict(open_alerts)
    for problem in opened:
        key = keys.account_problem(account.id, problem.key, event_id)
        alerts[problem.key] = key
        if channel:
            message = on.account_problem_message(
                account, problem, mention=ab.mention(settings.oncall_group), livemode=settings.stripe_livemode
            )
            outbox.enqueue(conn, channel=channel, message_key=key, payload=message)
        ALERTS.labels("connect_account").inc()
        _audit(conn, account.id, "account.problem", problem.key, event_id, now, reason=problem.reason)
    for problem_key in cleared:
        key = alerts.pop(problem_key)
        if channel:
            outbox.enqueue(
                conn,
                channel=channel,
                parent_key=key,
                message_key=keys.account_event(account.id, event_id, problem_key),
                payload=on.account_cleared_note(problem_key),
            )
        _audit(conn, account.id, "account.problem_cleared", problem_key, event_id, now)
    accounts.save(conn, account, alerts)


def _audit(
    conn: psycopg.Connection, account_id: str, action: str, problem: str, event_id: str, now: datetime, **more: Any
) -> None:
    audit.record(
        conn,
        actor="stripe",
        surface="webhook",
        action=action,
        subject=account_id,
        stripe_ids=[account_id, event_id],
        details={"problem": problem, **more},
        cause=f"{event_id}:{account_id}:{action}:{problem}",
        at=now,
    )


def sync_accounts(pool: ConnectionPool, gateway: StripeGateway) -> int:
    """Know every connected account Stripe lists (only that they exist: their events say the rest).

    Returns how many were new; a key without Connect permissions knows none, and says so in the log.
    """
    try:
        listed = gateway.connected_accounts()
    except DeskError as exc:
        log.info("connected accounts not listed: %s", exc.message)
        return 0
    new = 0
    with db.transaction(pool) as conn:
        for account in listed:
            if isinstance(account.get("id"), str):
                new += accounts.know(conn, account["id"])
    return new


def known_accounts(pool: ConnectionPool, limit: int) -> list[str]:
    """Connected accounts the delivery check and backfill cover, the busiest first."""
    with db.connection(pool) as conn:
        return accounts.known(conn, limit)
