"""Connected accounts (Stripe Connect) and which of them owns an object we found by trying them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from domain.connect import Account, Capability

KNOW = """
INSERT INTO connected_accounts (id) VALUES (%(id)s) ON CONFLICT (id) DO NOTHING RETURNING id
"""
LOCK = """
SELECT id, name, charges_enabled, payouts_enabled, disabled_reason, currently_due, past_due, capabilities,
       connected, observed_at, connection_at, open_alerts
FROM connected_accounts WHERE id = %(id)s FOR UPDATE
"""
SAVE = """
UPDATE connected_accounts SET name = %(name)s, charges_enabled = %(charges_enabled)s,
       payouts_enabled = %(payouts_enabled)s, disabled_reason = %(disabled_reason)s,
       currently_due = %(currently_due)s, past_due = %(past_due)s, capabilities = %(capabilities)s,
       connected = %(connected)s, observed_at = %(observed_at)s, connection_at = %(connection_at)s,
       open_alerts = %(open_alerts)s, updated_at = now()
WHERE id = %(id)s
"""
# The accounts a lookup may try: those we know and that are still connected, most recently active first
# (payments we hold name the busy ones).
KNOWN = """
SELECT a.id FROM connected_accounts a
LEFT JOIN LATERAL (SELECT max(p.observed_at) AS last FROM payments p WHERE p.account = a.id) p ON true
WHERE a.connected
ORDER BY p.last DESC NULLS LAST, a.first_seen_at DESC, a.id
LIMIT %(limit)s
"""
OWNER = "SELECT account FROM object_accounts WHERE object_id = %(id)s"
REMEMBER_OWNER = """
INSERT INTO object_accounts (object_id, account, found_at) VALUES (%(id)s, %(account)s, %(now)s)
ON CONFLICT (object_id) DO UPDATE SET account = EXCLUDED.account, found_at = EXCLUDED.found_at
"""


def know(conn: psycopg.Connection, account_id: str) -> bool:
    """Record that an account exists (from Stripe's list or an event); True when it is new to us."""
    return conn.execute(KNOW, {"id": account_id}).fetchone() is not None


def lock(conn: psycopg.Connection, account_id: str) -> tuple[Account, dict[str, str]]:
    """The account (created when unknown) and its open alerts, locked until the transaction ends."""
    know(conn, account_id)
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(LOCK, {"id": account_id}).fetchone()
    if row is None:  # deleted by hand between the two statements: start afresh
        return Account(account_id), {}
    caps = {
        name: Capability(c.get("status", "unknown"), c.get("reason"), tuple(c.get("due") or ()), int(c.get("at") or 0))
        for name, c in (row["capabilities"] or {}).items()
    }
    account = Account(
        id=row["id"],
        name=row["name"],
        charges_enabled=row["charges_enabled"],
        payouts_enabled=row["payouts_enabled"],
        disabled_reason=row["disabled_reason"],
        currently_due=tuple(row["currently_due"] or ()),
        past_due=tuple(row["past_due"] or ()),
        capabilities=caps,
        connected=row["connected"],
        observed_at=row["observed_at"],
        connection_at=row["connection_at"],
    )
    return account, dict(row["open_alerts"] or {})


def save(conn: psycopg.Connection, account: Account, open_alerts: dict[str, str]) -> None:
    """Write the merged account and its open alerts."""
    caps: dict[str, Any] = {
        name: {"status": c.status, "reason": c.reason, "due": list(c.due), "at": c.at}
        for name, c in account.capabilities.items()
    }
    conn.execute(
        SAVE,
        {
            "id": account.id,
            "name": account.name,
            "charges_enabled": account.charges_enabled,
            "payouts_enabled": account.payouts_enabled,
            "disabled_reason": account.disabled_reason,
            "currently_due": list(account.currently_due),
            "past_due": list(account.past_due),
            "capabilities": Jsonb(caps),
            "connected": account.connected,
            "observed_at": account.observed_at,
            "connection_at": account.connection_at,
            "open_alerts": Jsonb(open_alerts),
        },
    )


def known(conn: psycopg.Connection, limit: int) -> list[str]:
    """Connected accounts a search may try, the busiest first."""
    return [row[0] for row in conn.execute(KNOWN, {"limit": limit}).fetchall()]


def owner(conn: psycopg.Connection, object_id: str) -> str | None:
    """The connected account that owns an object, when a search found it before."""
    row = conn.execute(OWNER, {"id": object_id}).fetchone()
    return row[0] if row else None


def remember_owner(conn: psycopg.Connection, object_id: str, account: str, now: datetime) -> None:
    """Cache which account owns an object, so the next lookup goes straight there."""
    conn.execute(REMEMBER_OWNER, {"id": object_id, "account": account, "now": now})
