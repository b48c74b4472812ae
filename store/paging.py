"""The PagerDuty outbox: Events API v2 events written with the incident change, sent by the worker."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

ENQUEUE = """
INSERT INTO pagerduty_outbox (dedup_key, action, step_key, event, next_attempt_at)
VALUES (%(dedup_key)s, %(action)s, %(step_key)s, %(event)s, %(now)s)
ON CONFLICT (step_key) DO NOTHING
RETURNING id
"""

# Per alert, the oldest queued event first: an acknowledge or resolve never overtakes its trigger,
# even while the trigger waits out PagerDuty's 500s.
CLAIM = """
SELECT o.id, o.dedup_key, o.action, o.event, o.attempts
FROM pagerduty_outbox o
WHERE o.status = 'queued' AND o.next_attempt_at <= %(now)s
  AND NOT EXISTS (SELECT 1 FROM pagerduty_outbox e
                  WHERE e.dedup_key = o.dedup_key AND e.status = 'queued' AND e.id < o.id)
ORDER BY o.id
LIMIT 1
FOR UPDATE OF o SKIP LOCKED
"""
SENT = "UPDATE pagerduty_outbox SET status = 'sent', sent_at = %(now)s, attempts = attempts + 1 WHERE id = %(id)s"
RETRY = """
UPDATE pagerduty_outbox SET attempts = attempts + %(counted)s, next_attempt_at = %(at)s, last_error = %(error)s
WHERE id = %(id)s
"""
DEAD = "UPDATE pagerduty_outbox SET status = 'dead', attempts = attempts + 1, last_error = %(error)s WHERE id = %(id)s"
STATS = """
SELECT count(*) FILTER (WHERE status = 'queued'), count(*) FILTER (WHERE status = 'dead'),
       min(created_at) FILTER (WHERE status = 'queued')
FROM pagerduty_outbox
"""


@dataclass(frozen=True, slots=True)
class Queued:
    """An event taken for sending (its row locked until the transaction ends)."""

    id: int
    dedup_key: str
    action: str
    event: dict[str, Any]
    attempts: int


def enqueue(
    conn: psycopg.Connection, *, dedup_key: str, action: str, step_key: str, event: dict[str, Any], now: datetime
) -> bool:
    """Queue an event in the caller's transaction; False when this step was already queued."""
    params = {"dedup_key": dedup_key, "action": action, "step_key": step_key, "event": Jsonb(event), "now": now}
    return conn.execute(ENQUEUE, params).fetchone() is not None


def claim(conn: psycopg.Connection, now: datetime) -> Queued | None:
    """Lock the next event due (inside a transaction)."""
    with conn.cursor(row_factory=class_row(Queued)) as cur:
        return cur.execute(CLAIM, {"now": now}).fetchone()


def sent(conn: psycopg.Connection, item: Queued, now: datetime) -> None:
    """PagerDuty accepted it."""
    conn.execute(SENT, {"id": item.id, "now": now})


def retry(conn: psycopg.Connection, item: Queued, *, at: datetime, error: str, counted: bool = True) -> None:
    """Try again at `at` (throttling is not counted as an attempt)."""
    conn.execute(RETRY, {"id": item.id, "at": at, "error": error[:500], "counted": 1 if counted else 0})


def dead(conn: psycopg.Connection, item: Queued, *, error: str) -> None:
    """PagerDuty refused the event as invalid: kept and visible, never retried."""
    conn.execute(DEAD, {"id": item.id, "error": error[:500]})


def stats(conn: psycopg.Connection) -> tuple[int, int, datetime | None]:
    """Queued count, dead count, and when the oldest queued event was written."""
    row = conn.execute(STATS).fetchone()
    return (row[0], row[1], row[2]) if row else (0, 0, None)
