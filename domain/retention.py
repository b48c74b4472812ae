"""What the worker may delete, and from when: pure, so the boundaries are tested as a table.

Processed and ignored Stripe events older than EVENT_RETENTION_DAYS, and delivered Slack messages
older than 30 days, go; dead-lettered events stay until replayed or purged on purpose; the audit
log is never pruned (it is append-only in the database itself). "Older than" is strict: a row
exactly at the cut-off stays.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

MESSAGES_KEPT = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """Rows strictly older than these may be deleted."""

    events: datetime
    messages: datetime


def cutoffs(now: datetime, event_retention_days: int) -> Cutoffs:
    """The cut-offs at `now`."""
    return Cutoffs(events=now - timedelta(days=event_retention_days), messages=now - MESSAGES_KEPT)


def expired(at: datetime, cutoff: datetime) -> bool:
    """Whether a row from `at` is older than the cut-off (what the SQL's `< cutoff` says)."""
    return at < cutoff
