"""The Slack outbox: messages written with the change they announce, delivered by the worker."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

# A reply or update whose parent was never queued, or was given up on, can never be delivered;
# queued, it would hold its channel's queue behind it for ever, so it is born dead (and visible).
ENQUEUE = """
INSERT INTO slack_outbox (method, channel, message_key, parent_key, payload, status, last_error)
SELECT %(method)s, %(channel)s, %(message_key)s, %(parent_key)s, %(payload)s,
       CASE WHEN orphan THEN 'dead' ELSE 'queued' END,
       CASE WHEN orphan THEN 'parent message missing or dead-lettered' END
FROM (SELECT %(parent_key)s::text IS NOT NULL AND NOT EXISTS (
          SELECT 1 FROM slack_outbox p WHERE p.message_key = %(parent_key)s AND p.status <> 'dead') AS orphan) o
ON CONFLICT (message_key) DO NOTHING
"""

# Per channel, the oldest queued message goes first (so a thread stays in order and a reply never
# overtakes its parent); a channel waits while its pace says so; a reply or update waits for the
# Slack ts of the message it belongs to.
CLAIM = """
SELECT o.id, o.method, o.channel, o.message_key, o.parent_key, o.payload, o.attempts, m.ts AS parent_ts
FROM slack_outbox o
LEFT JOIN slack_messages m ON m.key = o.parent_key
WHERE o.status = 'queued' AND o.next_attempt_at <= %(now)s
  AND (o.parent_key IS NULL OR m.ts IS NOT NULL)
  AND NOT EXISTS (SELECT 1 FROM slack_outbox e
                  WHERE e.channel = o.channel AND e.status = 'queued' AND e.id < o.id)
  AND NOT EXISTS (SELECT 1 FROM slack_pace p WHERE p.channel = o.channel AND p.next_at > %(now)s)
ORDER BY o.id
LIMIT 1
FOR UPDATE OF o SKIP LOCKED
"""

SENT = """
UPDATE slack_outbox SET status = 'sent', sent_at = %(now)s, slack_ts = %(ts)s, attempts = attempts + 1
WHERE id = %(id)s
"""
REMEMBER = """
INSERT INTO slack_messages (key, channel, ts) VALUES (%(key)s, %(channel)s, %(ts)s)
ON CONFLICT (key) DO NOTHING
"""
RETRY = """
UPDATE slack_outbox SET attempts = attempts + %(counted)s, next_attempt_at = %(at)s, last_error = %(error)s
WHERE id = %(id)s
"""
DEAD = "UPDATE slack_outbox SET status = 'dead', attempts = attempts + 1, last_error = %(error)s WHERE id = %(id)s"
DEAD_CHILDREN = """
UPDATE slack_outbox SET status = 'dead', last_error = %(error)s
WHERE parent_key = %(key)s AND status = 'queued'
"""
PACE = """
INSERT INTO slack_pace (channel, next_at) VALUES (%(channel)s, %(at)s)
ON CONFLICT (channel) DO UPDATE SET next_at = greatest(slack_pace.next_at, EXCLUDED.next_at)
"""
STATS = """
SELECT count(*) FILTER (WHERE status = 'queued') AS queued,
       count(*) FILTER (WHERE status = 'dead') AS dead,
       min(created_at) FILTER (WHERE status = 'queued') AS oldest_queued
FROM slack_outbox
"""
EXISTS = "SELECT 1 FROM slack_outbox WHERE message_key = %(key)s"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message taken for delivery (its row locked until the transaction ends)."""

    id: int
    method: str
    channel: str
    message_key: str | None
    parent_key: str | None
    payload: dict[str, Any]
    attempts: int
    parent_ts: str | None


def enqueue(
    conn: psycopg.Connection,
    *,
    channel: str,
    payload: dict[str, Any],
    method: str = "chat.postMessage",
    message_key: str | None = None,
    parent_key: str | None = None,
) -> None:
    """Queue a message; call in the transaction of the change it announces."""
    conn.execute(
        ENQUEUE,
        {
            "method": method,
            "channel": channel,
            "message_key": message_key,
            "parent_key": parent_key,
            "payload": Jsonb(payload),
        },
    )


def claim(conn: psycopg.Connection, now: datetime) -> Outgoing | None:
    """Lock the next deliverable message (inside a transaction)."""
    with conn.cursor(row_factory=class_row(Outgoing)) as cur:
        return cur.execute(CLAIM, {"now": now}).fetchone()


def sent(conn: psycopg.Connection, msg: Outgoing, ts: str | None, *, now: datetime, next_at: datetime) -> None:
    """Mark delivered, remember its ts under its key, and pace the channel."""
    conn.execute(SENT, {"id": msg.id, "ts": ts, "now": now})
    if msg.message_key and ts:
        conn.execute(REMEMBER, {"key": msg.message_key, "channel": msg.channel, "ts": ts})
    pace(conn, msg.channel, next_at)


def retry(conn: psycopg.Connection, msg: Outgoing, *, at: datetime, error: str, counted: bool = True) -> None:
    """Try again at `at` (a rate limit is not counted as an attempt)."""
    conn.execute(RETRY, {"id": msg.id, "at": at, "error": error[:500], "counted": 1 if counted else 0})


def dead(conn: psycopg.Connection, msg: Outgoing, *, error: str) -> None:
    """Give up on a message Slack will never accept; it stays visible."""
    conn.execute(DEAD, {"id": msg.id, "error": error[:500]})


def dead_children(conn: psycopg.Connection, key: str, *, error: str) -> int:
    """Give up on the queued replies and updates of a message that was dead-lettered."""
    return conn.execute(DEAD_CHILDREN, {"key": key, "error": error[:500]}).rowcount


def pace(conn: psycopg.Connection, channel: str, at: datetime) -> None:
    """Hold the channel's next message until `at`."""
    conn.execute(PACE, {"channel": channel, "at": at})


def stats(conn: psycopg.Connection) -> tuple[int, int, datetime | None]:
    """Queued count, dead count, and when the oldest queued message was written."""
    row = conn.execute(STATS).fetchone()
    return (row[0], row[1], row[2]) if row else (0, 0, None)


def exists(conn: psycopg.Connection, key: str) -> bool:
    """Whether a message with this key was ever queued (it keeps its row once sent or dead)."""
    return conn.execute(EXISTS, {"key": key}).fetchone() is not None
