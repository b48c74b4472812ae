"""Refund drafts: a refund that runs at once waits here for its requester to confirm the amount."""

from __future__ import annotations

import uuid
from dataclasses import fields
from datetime import datetime

import psycopg
from psycopg.rows import class_row

from domain.models import Draft

COLUMNS = ", ".join(f.name for f in fields(Draft))

CREATE = f"""
INSERT INTO refund_drafts ({COLUMNS})
VALUES (%(id)s, %(payment_id)s, %(amount)s, %(currency)s, %(reason)s, %(note)s, %(requested_by)s,
        %(requested_via)s, %(created_at)s, %(expires_at)s)
RETURNING {COLUMNS}
"""

# Taking a draft removes it: of two clicks on Confirm, one gets the row.
TAKE = f"""
DELETE FROM refund_drafts WHERE id = %(id)s AND requested_by = %(user)s RETURNING {COLUMNS}
"""

DISCARD_EXPIRED = "DELETE FROM refund_drafts WHERE expires_at < %(now)s"


def create(conn: psycopg.Connection, **values) -> Draft:
    """Store a draft; its id goes into the Confirm button."""
    with conn.cursor(row_factory=class_row(Draft)) as cur:
        row = cur.execute(CREATE, {"id": uuid.uuid4(), **values}).fetchone()
    if row is None:  # pragma: no cover - INSERT … RETURNING always returns the row
        raise RuntimeError("refund draft not stored")
    return row


def take(conn: psycopg.Connection, draft_id: str, user: str) -> Draft | None:
    """Remove and return the user's draft; None when it was already taken, discarded, or is not theirs."""
    try:
        key = uuid.UUID(draft_id)
    except ValueError:
        return None
    with conn.cursor(row_factory=class_row(Draft)) as cur:
        return cur.execute(TAKE, {"id": key, "user": user}).fetchone()


def discard_expired(conn: psycopg.Connection, now: datetime) -> int:
    """Remove drafts nobody confirmed in time."""
    return conn.execute(DISCARD_EXPIRED, {"now": now}).rowcount
