"""Retention: the worker deletes old processed events and delivered Slack messages, a small batch at a time.

Each batch is its own short transaction and skips rows another session holds, so pruning never
holds long locks or waits on the worker applying events. What a lookup shows lives in payments,
refunds and disputes, which are never pruned; a delivered message keeps its Slack ts in
slack_messages, so its thread and updates still find it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from psycopg_pool import ConnectionPool

from domain.retention import cutoffs
from settings import Settings
from store import db, events, outbox

log = logging.getLogger(__name__)

BATCH = 1000
# Batches per round; a round that had more to do says so, and the worker goes on at once.
ROUND = 50


@dataclass(frozen=True, slots=True)
class Pruned:
    """What one round deleted, and whether more is left."""

    events: int
    messages: int
    more: bool


def prune(
    pool: ConnectionPool, settings: Settings, *, now: datetime, batch: int = BATCH, rounds: int = ROUND
) -> Pruned:
    """Delete what retention allows at `now`, up to `rounds` batches of each kind."""
    cut = cutoffs(now, settings.event_retention_days)
    counts = []
    more = False
    for delete, before in ((events.prune, cut.events), (outbox.prune, cut.messages)):
        total = 0
        for _ in range(rounds):
            with db.transaction(pool) as conn:
                n = delete(conn, before=before, limit=batch)
            total += n
            if n < batch:
                break
        else:
            more = True
        counts.append(total)
    if any(counts):
        log.info("retention: deleted %d old events and %d delivered Slack messages", *counts)
    return Pruned(events=counts[0], messages=counts[1], more=more)
