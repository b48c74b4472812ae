"""The Stripe event inbox: stored before acknowledging, processed by the worker, never dropped."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row

from domain.errors import Unstorable
from store import db

RECORD = """
INSERT INTO stripe_events (id, type, account, api_version, livemode, stripe_created, payload, source,
                           next_attempt_at)
VALUES (%(id)s, %(type)s, %(account)s, %(api_version)s, %(livemode)s, to_timestamp(%(created)s),
        %(payload)s::jsonb, %(source)s, now())
ON CONFLICT (id) DO NOTHING
RETURNING id
"""

# The oldest due event that no other worker holds. The payload comes as text, decoded by the
# caller where a failure is that event's alone. stripe_created comes as Python can hold it:
# Postgres keeps years that datetime refuses (before 1, after 9999), and one such row must not
# make every claim (or listing, below) fail; a day's margin covers the session time zone.
CLAIM = """
SELECT id, type, account, payload::text AS body, attempts,
       least(greatest(stripe_created, '0001-01-02 00:00+00'), '9999-12-30 00:00+00') AS stripe_created,
       received_at
FROM stripe_events
WHERE status IN ('pending', 'failed') AND next_attempt_at <= %(now)s
ORDER BY stripe_events.stripe_created, received_at
LIMIT 1
FOR UPDATE SKIP LOCKED
"""

FINISH = """
UPDATE stripe_events SET status = %(status)s, processed_at = %(now)s, last_error = NULL, next_attempt_at = NULL,
       attempts = attempts + 1
WHERE id = %(id)s
"""

FAIL = """
UPDATE stripe_events SET status = %(status)s, attempts = attempts + 1, last_error = %(error)s,
       next_attempt_at = CASE WHEN %(status)s = 'dead' THEN NULL ELSE %(retry_at)s END
WHERE id = %(id)s
"""

LIST = """
SELECT id, type, status, attempts, last_error, next_attempt_at,
       least(greatest(stripe_created, '0001-01-02 00:00+00'), '9999-12-30 00:00+00') AS stripe_created,
       received_at, source
FROM stripe_events WHERE status = ANY(%(statuses)s) ORDER BY stripe_events.stripe_created LIMIT %(limit)s
"""

REPLAY = """
UPDATE stripe_events SET status = 'pending', attempts = 0, next_attempt_at = now(), last_error = NULL,
       source = CASE WHEN source = 'webhook' THEN source ELSE 'replay' END
WHERE (id = %(id)s OR (%(id)s IS NULL AND status = ANY(%(statuses)s)))
  AND status IN ('failed', 'dead', 'ignored', 'processed')
RETURNING id
"""

COUNTS = "SELECT status, count(*) FROM stripe_events GROUP BY status"


@dataclass(frozen=True, slots=True)
class Claimed:
    """An event taken for processing, with its row locked until the transaction ends."""

    id: str
    type: str
    account: str | None
    body: str  # the event's JSON
    attempts: int
    stripe_created: datetime
    received_at: datetime


@dataclass(frozen=True, slots=True)
class EventRow:
    """An event as listed for people."""

    id: str
    type: str
    status: str
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    stripe_created: datetime
    received_at: datetime
    source: str


def record(conn: psycopg.Connection, event: dict[str, Any], payload: str, *, source: str = "webhook") -> bool:
    """Store an event by its id; False when it was already stored (a redelivery).

    Raises Unstorable when the database refuses the event's data (JSON it cannot hold, an id too
    long to index): storing it again would fail the same way.
    """
    try:
        row = conn.execute(
            RECORD,
            {
                "id": event["id"],
                "type": event["type"],
                "account": event.get("account"),
                "api_version": event.get("api_version"),
                "livemode": bool(event.get("livemode")),
                "created": event["created"],
                "payload": payload,
                "source": source,
            },
        ).fetchone()
    except (psycopg.DataError, psycopg.IntegrityError, psycopg.errors.ProgramLimitExceeded) as exc:
        raise Unstorable(db.message(exc)) from exc
    return row is not None


def claim(conn: psycopg.Connection, now: datetime) -> Claimed | None:
    """Lock the next due event (call inside a transaction)."""
    with conn.cursor(row_factory=class_row(Claimed)) as cur:
        return cur.execute(CLAIM, {"now": now}).fetchone()


def finish(conn: psycopg.Connection, event_id: str, *, ignored: bool, now: datetime) -> None:
    """Mark an event processed (or ignored: a type we have no handler for)."""
    conn.execute(FINISH, {"id": event_id, "status": "ignored" if ignored else "processed", "now": now})


def fail(conn: psycopg.Connection, event_id: str, *, error: str, dead: bool, retry_at: datetime) -> None:
    """Record a failed attempt: retried at retry_at, or dead-lettered (kept and listed)."""
    # Postgres text cannot hold U+0000, and an error message may quote the payload.
    conn.execute(
        FAIL,
        {
            "id": event_id,
            "status": "dead" if dead else "failed",
            "error": error[:2000].replace("\x00", "\ufffd"),
            "retry_at": retry_at,
        },
    )


def listing(conn: psycopg.Connection, statuses: list[str], limit: int = 100) -> list[EventRow]:
    """Events in some statuses, oldest first."""
    with conn.cursor(row_factory=class_row(EventRow)) as cur:
        return cur.execute(LIST, {"statuses": statuses, "limit": limit}).fetchall()


def replay(conn: psycopg.Connection, event_id: str | None, statuses: list[str]) -> list[str]:
    """Queue one event, or every event in some statuses, for processing again."""
    return [r[0] for r in conn.execute(REPLAY, {"id": event_id, "statuses": statuses}).fetchall()]


def counts(conn: psycopg.Connection) -> dict[str, int]:
    """How many events are in each status."""
    return dict(conn.execute(COUNTS).fetchall())
