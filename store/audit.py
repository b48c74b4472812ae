"""The append-only audit log: who did what, when, from which surface, with which Stripe ids."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

RECORD = """
INSERT INTO audit_log (actor, surface, action, subject, stripe_ids, details, cause, at)
VALUES (%(actor)s, %(surface)s, %(action)s, %(subject)s, %(stripe_ids)s, %(details)s, %(cause)s,
        coalesce(%(at)s, now()))
ON CONFLICT (cause) DO NOTHING
"""

FOR_SUBJECT = """
SELECT id, at, actor, surface, action, subject, stripe_ids, details, cause
FROM audit_log WHERE subject = %(subject)s ORDER BY id
"""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One line of the audit log."""

    id: int
    at: datetime
    actor: str
    surface: str
    action: str
    subject: str
    stripe_ids: list[str]
    details: dict[str, Any]
    cause: str | None


def record(
    conn: psycopg.Connection,
    *,
    actor: str,
    surface: str,
    action: str,
    subject: str,
    stripe_ids: Sequence[str] = (),
    details: dict[str, Any] | None = None,
    cause: str | None = None,
    at: datetime | None = None,
) -> None:
    """Append a record; a second record with the same cause (a replayed event) is not written."""
    conn.execute(
        RECORD,
        {
            "actor": actor,
            "surface": surface,
            "action": action,
            "subject": subject,
            "stripe_ids": list(stripe_ids),
            "details": Jsonb(details or {}),
            "cause": cause,
            "at": at,
        },
    )


def for_subject(conn: psycopg.Connection, subject: str) -> list[AuditRecord]:
    """Every record about one subject, oldest first."""
    with conn.cursor(row_factory=class_row(AuditRecord)) as cur:
        return cur.execute(FOR_SUBJECT, {"subject": subject}).fetchall()
