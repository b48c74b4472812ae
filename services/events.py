"""Applying stored Stripe events: one at a time, each in its own transaction, retried with backoff."""

from __future__ import annotations

import logging
import random
from datetime import datetime

import psycopg
from psycopg_pool import ConnectionPool

import handlers  # noqa: F401 - registers the handlers
from domain.retry import backoff, gives_up
from domain.stripe_mapping import ts
from handlers.registry import EventContext, handler_for
from services.metrics import EVENTS_APPLIED, PROCESSING_SECONDS
from settings import Settings
from store import db, events

log = logging.getLogger(__name__)

RETRY_BASE_SECONDS = 15.0
RETRY_CAP_SECONDS = 3600.0


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
        ctx = EventContext(
            event_id=claimed.id, event_type=claimed.type, account=claimed.account,
            observed_at=ts(claimed.payload.get("created")) or claimed.stripe_created, now=now, settings=settings,
        )
        try:
            # A savepoint: a failing handler's writes are undone, the failure itself is recorded.
            with conn.transaction():
                handler(conn, claimed.payload["data"]["object"], ctx)
        except (psycopg.OperationalError, psycopg.errors.QueryCanceled):
            raise  # the database itself is in trouble: leave the event as it was
        except Exception as exc:
            attempts = claimed.attempts + 1
            dead = gives_up(attempts, settings.webhook_max_attempts)
            delay = backoff(attempts, base=RETRY_BASE_SECONDS, cap=RETRY_CAP_SECONDS, jitter=random.random())  # noqa: S311
            log.error("event %s (%s) failed, attempt %d%s", claimed.id, claimed.type, attempts,
                      ": dead-lettered" if dead else "", exc_info=exc)
            events.fail(conn, claimed.id, error=f"{type(exc).__name__}: {exc}", dead=dead, retry_at=now + delay)
            EVENTS_APPLIED.labels(claimed.type, "dead" if dead else "failed").inc()
            return claimed.id
        events.finish(conn, claimed.id, ignored=False, now=now)
        EVENTS_APPLIED.labels(claimed.type, "processed").inc()
        PROCESSING_SECONDS.observe(max(0.0, (now - claimed.received_at).total_seconds()))
        return claimed.id
