"""The outgoing-hook outbox: one row per message and endpoint, sent by the worker at least once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

ENQUEUE = """
INSERT INTO webhook_outbox (message_id, endpoint, type, payload, next_attempt_at)
VALUES (%(message_id)s, %(endpoint)s, %(type)s, %(payload)s, %(now)s)
ON CONFLICT (message_id, endpoint) DO NOTHING
RETURNING id
"""
# No order between messages (receivers order by the payload's timestamp); a slow endpoint's row is
# skipped by the others while it is being sent.
CLAIM = """
SELECT id, message_id, endpoint, type, payload, attempts
FROM webhook_outbox
WHERE status = 'queued' AND next_attempt_at <= %(now)s
ORDER BY next_attempt_at, id
LIMIT 1
FOR UPDATE SKIP LOCKED
"""
SENT = "UPDATE webhook_outbox SET status = 'sent', sent_at = %(now)s, attempts = attempts + 1 WHERE id = %(id)s"
RETRY = """
UPDATE webhook_outbox SET attempts = attempts + 1, next_attempt_at = %(at)s, last_error = %(error)s
WHERE id = %(id)s
"""
DEAD = "UPDATE webhook_outbox SET status = 'dead', attempts = attempts + 1, last_error = %(error)s WHERE id = %(id)s"
STATS = """
SELECT count(*) FILTER (WHERE status = 'queued'), count(*) FILTER (WHERE status = 'dead'),
       min(created_at) FILTER (WHERE status = 'queued')
FROM webhook_outbox
"""


@dataclass(frozen=True, slots=True)
class Queued:
    """A message taken for delivery to one endpoint (its row locked until the transaction ends)."""

    id: int
    message_id: str
    endpoint: str
    type: str
    payload: dict[str, Any]
    attempts: int


def enqueue(
    conn: psycopg.Connection,
    *,
    message_id: str,
    endpoint: str,
    event_type: str,
    payload: dict[str, Any],
    now: datetime,
) -> bool:
    """Queue a message for an endpoint in the caller's transaction; False when it was already queued."""
    params = {
        "message_id": message_id,
        "endpoint": endpoint,
        "type": event_type,
        "payload": Jsonb(payload),
        "now": now,
    }
    return conn.execute(ENQUEUE, params).fetchone() is not None


def claim(conn: psycopg.Connection, now: datetime) -> Queued | None:
    """Lock the next message due (inside a transaction)."""
    with conn.cursor(row_factory=class_row(Queued)) as cur:
        return cur.execute(CLAIM, {"now": now}).fetchone()


def sent(conn: psycopg.Connection, item: Queued, now: datetime) -> None:
    """The endpoint answered 2xx."""
    conn.execute(SENT, {"id": item.id, "now": now})


def retry(conn: psycopg.Connection, item: Queued, *, at: datetime, error: str) -> None:
    """Try again at `at`."""
    conn.execute(RETRY, {"id": item.id, "at": at, "error": error[:500]})


def dead(conn: psycopg.Connection, item: Queued, *, error: str) -> None:
    """Give up: kept, listed and counted, and replayable."""
    conn.execute(DEAD, {"id": item.id, "error": error[:500]})


def stats(conn: psycopg.Connection) -> tuple[int, int, datetime | None]:
    """Queued count, dead count, and when the oldest queued message was written."""
    row = conn.execute(STATS).fetchone()
    return (row[0], row[1], row[2]) if row else (0, 0, None)
