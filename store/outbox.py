"""The Slack outbox: messages written with the change they announce, delivered by the worker."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from domain.priority import URGENT
from store import db

# A reply or update whose parent was never queued, or was given up on, can never be delivered;
# queued, it would hold its channel's queue behind it for ever, so it is born dead (and visible).
# A parent delivered long ago may have left the outbox (retention) but keeps its ts in slack_messages.
ENQUEUE = """
INSERT INTO slack_outbox (method, channel, message_key, parent_key, payload, status, last_error, priority)
SELECT %(method)s, %(channel)s, %(message_key)s, %(parent_key)s, %(payload)s,
       CASE WHEN orphan THEN 'dead' ELSE 'queued' END,
       CASE WHEN orphan THEN 'parent message missing or dead-lettered' END,
       %(priority)s
FROM (SELECT %(parent_key)s::text IS NOT NULL
             AND NOT EXISTS (SELECT 1 FROM slack_outbox p WHERE p.message_key = %(parent_key)s AND p.status <> 'dead')
             AND NOT EXISTS (SELECT 1 FROM slack_messages m WHERE m.key = %(parent_key)s) AS orphan) o
ON CONFLICT (message_key) DO NOTHING
"""

# Only a channel's oldest queued message may go (so a thread stays in order and a reply never
# overtakes its parent); a channel waits while its pace says so; a reply or update waits for the
# Slack ts of the message it belongs to. Among the channels' heads, urgent before routine, then the
# oldest. The heads are found by skipping from channel to channel along slack_outbox_due, so a long
# backlog in one channel (the refunds feed after a burst) costs nothing to the others' messages.
# NO KEY UPDATE: as exclusive between deliverers as FOR UPDATE, yet the slack_unsure row written on
# a second connection during the delivery may still reference the locked row (its foreign key check).
CLAIM = """
WITH RECURSIVE heads (channel, id) AS (
    (SELECT channel, id FROM slack_outbox WHERE status = 'queued' ORDER BY channel, id LIMIT 1)
    UNION ALL
    SELECT nxt.channel, nxt.id FROM heads, LATERAL (
        SELECT channel, id FROM slack_outbox
        WHERE status = 'queued' AND channel > heads.channel ORDER BY channel, id LIMIT 1) nxt
)
SELECT o.id, o.method, o.channel, o.message_key, o.parent_key, o.payload, o.attempts, m.ts AS parent_ts,
       coalesce(o.delivery_key::text, 'outbox-' || o.id) AS delivery_key, u.first_at AS unsure_since,
       u.last_at AS unsure_until
FROM heads
JOIN slack_outbox o ON o.id = heads.id
LEFT JOIN slack_messages m ON m.key = o.parent_key
LEFT JOIN slack_unsure u ON u.outbox_id = o.id
WHERE o.status = 'queued' AND o.next_attempt_at <= %(now)s
  AND (o.parent_key IS NULL OR m.ts IS NOT NULL)
  AND NOT EXISTS (SELECT 1 FROM slack_pace p WHERE p.channel = o.channel AND p.next_at > %(now)s)
ORDER BY o.priority, o.id
LIMIT 1
FOR NO KEY UPDATE OF o SKIP LOCKED
"""

SENT = """
UPDATE slack_outbox SET status = 'sent', sent_at = %(now)s, slack_ts = %(ts)s, attempts = attempts + %(counted)s
WHERE id = %(id)s
"""
# Written and committed (on a connection of its own) just before a chat.postMessage goes out; the
# window grows with each uncertain attempt and is cleared once the message is known sent or dead.
UNSURE = """
INSERT INTO slack_unsure (outbox_id, first_at, last_at) VALUES (%(id)s, %(at)s, %(at)s)
ON CONFLICT (outbox_id) DO UPDATE SET last_at = greatest(slack_unsure.last_at, EXCLUDED.last_at)
"""
SURE = "DELETE FROM slack_unsure WHERE outbox_id = %(id)s"
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
EXISTS = """
SELECT 1 FROM slack_outbox WHERE message_key = %(key)s
UNION ALL
SELECT 1 FROM slack_messages WHERE key = %(key)s
LIMIT 1
"""
# Retention: delivered messages older than the cut-off, a small batch at a time. Their ts stays in
# slack_messages, so replies and updates still find their parent and `exists` still says yes.
PRUNE = """
DELETE FROM slack_outbox WHERE id IN (
    SELECT id FROM slack_outbox WHERE status = 'sent' AND sent_at < %(before)s
    ORDER BY sent_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
"""


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
    delivery_key: str  # sent in the message's metadata, to find it again
    unsure_since: datetime | None = None  # an earlier post may have reached Slack between these two times
    unsure_until: datetime | None = None


def enqueue(
    conn: psycopg.Connection,
    *,
    channel: str,
    payload: dict[str, Any],
    method: str = "chat.postMessage",
    message_key: str | None = None,
    parent_key: str | None = None,
    priority: int = URGENT,
) -> None:
    """Queue a message; call in the transaction of the change it announces.

    Routine messages (the refunds feed) wait while another channel has an urgent one ready.
    """
    conn.execute(
        ENQUEUE,
        {
            "method": method,
            "channel": channel,
            "message_key": message_key,
            "parent_key": parent_key,
            "payload": Jsonb(payload),
            "priority": priority,
        },
    )


def claim(conn: psycopg.Connection, now: datetime) -> Outgoing | None:
    """Lock the next deliverable message (inside a transaction)."""
    # Each channel's head along slack_outbox_due, even when a burst has outrun the statistics.
    with db.index_order(conn), conn.cursor(row_factory=class_row(Outgoing)) as cur:
        return cur.execute(CLAIM, {"now": now}).fetchone()


def sent(
    conn: psycopg.Connection, msg: Outgoing, ts: str | None, *, now: datetime, next_at: datetime, posted: bool = True
) -> None:
    """Mark delivered, remember its ts under its key, and pace the channel (posted=False: found already there)."""
    conn.execute(SENT, {"id": msg.id, "ts": ts, "now": now, "counted": 1 if posted else 0})
    conn.execute(SURE, {"id": msg.id})
    if msg.message_key and ts:
        conn.execute(REMEMBER, {"key": msg.message_key, "channel": msg.channel, "ts": ts})
    if posted:
        pace(conn, msg.channel, next_at)


def unsure(conn: psycopg.Connection, msg: Outgoing, at: datetime) -> None:
    """Record that a post is about to go out (use a connection of its own: it must commit before the post)."""
    conn.execute(UNSURE, {"id": msg.id, "at": at})


def sure(conn: psycopg.Connection, msg: Outgoing) -> None:
    """Forget the uncertainty: the only post that could have reached Slack surely did not."""
    conn.execute(SURE, {"id": msg.id})


def retry(conn: psycopg.Connection, msg: Outgoing, *, at: datetime, error: str, counted: bool = True) -> None:
    """Try again at `at` (a rate limit is not counted as an attempt)."""
    conn.execute(RETRY, {"id": msg.id, "at": at, "error": error[:500], "counted": 1 if counted else 0})


def dead(conn: psycopg.Connection, msg: Outgoing, *, error: str) -> None:
    """Give up on a message Slack will never accept; it stays visible."""
    conn.execute(DEAD, {"id": msg.id, "error": error[:500]})
    conn.execute(SURE, {"id": msg.id})


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
    """Whether a message with this key was ever queued (its row, or once pruned its ts, is kept)."""
    return conn.execute(EXISTS, {"key": key}).fetchone() is not None


def prune(conn: psycopg.Connection, *, before: datetime, limit: int) -> int:
    """Delete up to `limit` delivered messages sent before `before`; how many went."""
    return conn.execute(PRUNE, {"before": before, "limit": limit}).rowcount
