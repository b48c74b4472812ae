"""The Stripe event inbox: stored before acknowledging, processed by the worker, never dropped."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row

from domain.errors import Unstorable
from domain.priority import ROUTINE, URGENT, batch_split, event_priority
from store import db

RECORD = """
INSERT INTO stripe_events (id, type, account, api_version, livemode, stripe_created, payload, source,
                           next_attempt_at, priority)
VALUES (%(id)s, %(type)s, %(account)s, %(api_version)s, %(livemode)s, to_timestamp(%(created)s),
        %(payload)s::jsonb, %(source)s, now(), %(priority)s)
ON CONFLICT (id) DO NOTHING
RETURNING id
"""

# The oldest due events of one priority that no other worker holds (and this transaction has not
# taken already: its own locks are no reason to skip). The payload comes as text, decoded by the
# caller where a failure is that event's alone. stripe_created comes as Python can hold it:
# Postgres keeps years that datetime refuses (before 1, after 9999), and one such row must not
# make every claim (or listing, below) fail; a day's margin covers the session time zone.
CLAIM = """
SELECT id, type, account, payload::text AS body, attempts,
       least(greatest(stripe_created, '0001-01-02 00:00+00'), '9999-12-30 00:00+00') AS stripe_created,
       received_at, priority
FROM stripe_events
WHERE status IN ('pending', 'failed') AND priority = %(priority)s AND next_attempt_at <= %(now)s
  AND id <> ALL(%(taken)s)
ORDER BY stripe_events.stripe_created, received_at
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED
"""

FINISH = """
UPDATE stripe_events SET status = CASE WHEN id = ANY(%(ignored)s) THEN 'ignored' ELSE 'processed' END,
       processed_at = %(now)s, last_error = NULL, next_attempt_at = NULL, attempts = attempts + 1
WHERE id = ANY(%(ids)s)
"""

# A lock another transaction held too long (or a deadlock): not the event's fault, so not an attempt.
DEFER = "UPDATE stripe_events SET next_attempt_at = %(at)s WHERE id = %(id)s"

# Due events by priority, and since when the longest-waiting one has been due (stored, or its
# retry time come): how far behind the worker is.
BACKLOG = """
SELECT priority, count(*) AS due, min(next_attempt_at) AS oldest_due_since
FROM stripe_events
WHERE status IN ('pending', 'failed') AND next_attempt_at <= %(now)s
GROUP BY priority
"""

# Retention: applied events older than the cut-off, a small batch at a time (each its own short
# transaction; rows another session holds are left for the next round). The stripe_created index
# finds them; received_at and processed_at make sure a late backfill or a recent replay stays.
PRUNE = """
DELETE FROM stripe_events WHERE id IN (
    SELECT id FROM stripe_events
    WHERE stripe_created < %(before)s AND received_at < %(before)s
      AND status IN ('processed', 'ignored') AND coalesce(processed_at, received_at) < %(before)s
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED)
"""

# Dead-lettered events stay until replayed or purged on purpose (`refund-desk events purge`).
PURGE = """
DELETE FROM stripe_events
WHERE status = 'dead' AND (id = ANY(%(ids)s) OR %(all)s)
RETURNING id
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
    priority: int


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
                "priority": event_priority(event["type"]),
            },
        ).fetchone()
    except (psycopg.DataError, psycopg.IntegrityError, psycopg.errors.ProgramLimitExceeded) as exc:
        raise Unstorable(db.message(exc)) from exc
    return row is not None


@dataclass(frozen=True, slots=True)
class Backlog:
    """Due events of one priority, and since when the longest-waiting of them has been due."""

    priority: int
    due: int
    oldest_due_since: datetime | None


def _claim(conn: psycopg.Connection, now: datetime, priority: int, limit: int, taken: list[str]) -> list[Claimed]:
    if limit <= 0:
        return []
    with conn.cursor(row_factory=class_row(Claimed)) as cur:
        params = {"now": now, "priority": priority, "limit": limit, "taken": taken}
        return cur.execute(CLAIM, params).fetchall()


def claim(conn: psycopg.Connection, now: datetime, size: int = 1) -> list[Claimed]:
    """Lock up to `size` due events, urgent ones first (call inside a transaction).

    Urgent events take the batch first, except a share kept for routine events while any are due
    (domain/priority.py); whatever one kind leaves, the other takes.
    """
    first, _ = batch_split(size)
    with db.index_order(conn):  # stripe_events_due, even when a burst has outrun the statistics
        urgent = _claim(conn, now, URGENT, first, [])
        routine = _claim(conn, now, ROUTINE, size - len(urgent), [])
        if len(urgent) == first:
            urgent += _claim(conn, now, URGENT, size - len(urgent) - len(routine), [e.id for e in urgent])
    return urgent + routine


def finish(conn: psycopg.Connection, event_ids: list[str], *, ignored: list[str], now: datetime) -> None:
    """Mark events processed, and those in `ignored` ignored (types we have no handler for)."""
    if event_ids:
        conn.execute(FINISH, {"ids": event_ids, "ignored": ignored, "now": now})


def defer(conn: psycopg.Connection, event_id: str, *, until: datetime) -> None:
    """Leave an event for later without counting an attempt (a lock it needed was not free)."""
    conn.execute(DEFER, {"id": event_id, "at": until})


def backlog(conn: psycopg.Connection, now: datetime) -> dict[int, Backlog]:
    """Due events by priority (a priority with none due is absent)."""
    with conn.cursor(row_factory=class_row(Backlog)) as cur:
        return {b.priority: b for b in cur.execute(BACKLOG, {"now": now})}


def prune(conn: psycopg.Connection, *, before: datetime, limit: int) -> int:
    """Delete up to `limit` processed or ignored events older than `before`; how many went."""
    return conn.execute(PRUNE, {"before": before, "limit": limit}).rowcount


def purge(conn: psycopg.Connection, event_ids: list[str], *, every_dead: bool = False) -> list[str]:
    """Delete dead-lettered events (those named, or all of them); the ids deleted."""
    return [r[0] for r in conn.execute(PURGE, {"ids": event_ids, "all": every_dead}).fetchall()]


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
