"""Applying stored Stripe events: one at a time, each in its own transaction, retried with backoff.

An event whose data makes it fail (a handler's bug, a value the database refuses, an id too long
to index) fails alone: its error is recorded, it is retried later and finally dead-lettered, and
the events behind it go on. Only the database being unreachable leaves the event as it was.
"""

from __future__ import annotations

import json
import logging
import random
import re
import traceback
from datetime import datetime

import psycopg
from psycopg_pool import ConnectionPool

from domain.retry import backoff, gives_up
from domain.stripe_mapping import ts
from handlers import disputes, payments, radar, refunds  # noqa: F401 - registers the handlers
from handlers.registry import EventContext, handler_for
from services.metrics import EVENTS_APPLIED, PROCESSING_SECONDS
from settings import Settings
from store import db, events

log = logging.getLogger(__name__)

RETRY_BASE_SECONDS = 15.0
RETRY_CAP_SECONDS = 3600.0
# A Python error's message may quote a payload value; the errors we record and log never show an email.
_EMAIL = re.compile(r"[^\s@'\"()<>,;:]+@[^\s@'\"()<>,;:]+\.[A-Za-z]{2,}")


def describe(exc: BaseException) -> str:
    """An error as recorded in last_error and logged: its class and primary message, no row data."""
    return _EMAIL.sub("[email]", db.message(exc))


def process_next(pool: ConnectionPool, settings: Settings, *, now: datetime) -> str | None:
    """Apply the oldest due event; return its id, or None when nothing is due."""
    with db.transaction(pool) as conn:
        claimed = events.claim(conn, now)
        if claimed is None:
            return None
        handler = handler_for(claimed.type)
        if handler is None:
            events.finish(conn, claimed.id, ignored=True, now=now)
            EVENTS_APPLIED.labels(claimed.type, "ignored").inc()
            return claimed.id
        try:
            # A savepoint: a failing handler's writes are undone, the failure itself is recorded.
            with conn.transaction():
                payload = json.loads(claimed.body)
                ctx = EventContext(
                    event_id=claimed.id,
                    event_type=claimed.type,
                    account=claimed.account,
                    observed_at=ts(payload.get("created")) or claimed.stripe_created,
                    now=now,
                    settings=settings,
                )
                handler(conn, payload["data"]["object"], ctx)
        except Exception as exc:
            if db.is_outage(exc, conn):
                raise  # the database itself is in trouble: leave the event as it was
            _fail(conn, claimed, exc, settings, now)
            return claimed.id
        events.finish(conn, claimed.id, ignored=False, now=now)
        EVENTS_APPLIED.labels(claimed.type, "processed").inc()
        PROCESSING_SECONDS.observe(max(0.0, (now - claimed.received_at).total_seconds()))
        return claimed.id


def _fail(conn: psycopg.Connection, claimed: events.Claimed, exc: Exception, settings: Settings, now: datetime) -> None:
    attempts = claimed.attempts + 1
    dead = gives_up(attempts, settings.webhook_max_attempts)
    delay = backoff(attempts, base=RETRY_BASE_SECONDS, cap=RETRY_CAP_SECONDS, jitter=random.random())  # noqa: S311
    error = describe(exc)
    # The stack without the exception's text: psycopg's text carries DETAIL ("Failing row
    # contains (...)", customer emails included), so exc_info is never handed to the logger.
    stack = "".join(traceback.format_tb(exc.__traceback__))
    log.error(
        "event %s (%s) failed, attempt %d%s: %s\nTraceback (most recent call last):\n%s",
        claimed.id,
        claimed.type,
        attempts,
        ": dead-lettered" if dead else "",
        error,
        stack.rstrip(),
    )
    events.fail(conn, claimed.id, error=error, dead=dead, retry_at=now + delay)
    EVENTS_APPLIED.labels(claimed.type, "dead" if dead else "failed").inc()
