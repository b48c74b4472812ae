"""Applying stored Stripe events in batches: many claimed at once, each applied under its own savepoint,
one commit per batch; retried with backoff, dead-lettered in the end.

Measured before batching (docs: bench/README.md, "Worker"): one transaction per event spent its
time on round trips (about twelve per event: claim, savepoint, the handler's statements, finish,
commit) and on the commit's WAL flush, not on the handlers' own work. A batch pays the claim, the
finish and the commit once for up to EVENT_BATCH_SIZE events.

Every guarantee of one-at-a-time holds per event: an event's record changes, audit record and Slack
messages commit together (its savepoint, inside the batch's transaction); an event whose data makes
it fail (a handler's bug, a value the database refuses, an id too long to index) fails alone: its
savepoint is rolled back, its error recorded, it is retried later and finally dead-lettered, and
the others in the batch are applied. Several workers (processes or threads) share the inbox: a
claim locks its rows (FOR UPDATE SKIP LOCKED) until the batch commits. Only the database being
unreachable undoes the whole batch, leaving every event as it was.
"""

from __future__ import annotations

import json
import logging
import random
import re
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psycopg
from psycopg_pool import ConnectionPool

from domain.retry import backoff, gives_up
from domain.stripe_mapping import ts
from handlers import accounts, disputes, payments, payouts, radar, refunds  # noqa: F401 - registers the handlers
from handlers.registry import EventContext, Handler, handler_for
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


# A lock held by someone else for this long (or a deadlock between two workers' batches) puts the
# event back for a moment instead of stalling the batch; it is not the event's fault, so not an attempt.
LOCK_TIMEOUT = "SET LOCAL lock_timeout = '5s'"
LOCK_RETRY_SECONDS = 2.0
SAVEPOINT = "SAVEPOINT event"
ROLLBACK_TO = "ROLLBACK TO SAVEPOINT event"
_LOCK_ERRORS = (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected)


@dataclass
class Batch:
    """What one batch did, by event id."""

    applied: list[str] = field(default_factory=list)  # processed or ignored
    failed: list[str] = field(default_factory=list)  # recorded as failed (or dead-lettered)
    deferred: list[str] = field(default_factory=list)  # put back untouched: a lock was not free

    @property
    def taken(self) -> list[str]:
        """Every event the batch claimed."""
        return self.applied + self.failed + self.deferred


def process_batch(pool: ConnectionPool, settings: Settings, *, now: datetime, size: int) -> Batch:
    """Apply up to `size` due events, urgent ones first, in one transaction; what happened to each."""
    batch = Batch()
    counted: list[tuple[str, str]] = []
    latencies: list[float] = []
    with db.transaction(pool) as conn:
        conn.execute(LOCK_TIMEOUT)
        claimed = events.claim(conn, now, size)
        processed: list[str] = []
        ignored: list[str] = []
        # Rows are locked in the order events are applied; two batches that touch the same payments
        # in opposite orders deadlock (a second lost each). In payment order, they only ever wait.
        for event in sorted(claimed, key=_lock_order):
            handler = handler_for(event.type)
            if handler is None:
                ignored.append(event.id)
                counted.append((event.type, "ignored"))
                continue
            try:
                with _savepoint(conn):
                    _apply(conn, handler, event, settings, now)
            except _LOCK_ERRORS as exc:
                log.warning("event %s (%s) put back: %s", event.id, event.type, describe(exc))
                events.defer(conn, event.id, until=now + timedelta(seconds=LOCK_RETRY_SECONDS))
                batch.deferred.append(event.id)
                continue
            except Exception as exc:
                if db.is_outage(exc, conn):
                    raise  # the database itself is in trouble: leave every event as it was
                counted.append((event.type, _fail(conn, event, exc, settings, now)))
                batch.failed.append(event.id)
                continue
            processed.append(event.id)
            counted.append((event.type, "processed"))
            latencies.append(max(0.0, (now - event.received_at).total_seconds()))
        events.finish(conn, processed + ignored, ignored=ignored, now=now)
        done = set(processed) | set(ignored)
        batch.applied = [e.id for e in claimed if e.id in done]
    # Counted once committed: a batch undone by an outage applied nothing.
    for event_type, outcome in counted:
        EVENTS_APPLIED.labels(event_type, outcome).inc()
    for seconds in latencies:
        PROCESSING_SECONDS.observe(seconds)
    return batch


_PAYMENT_REF = re.compile(r'"(?:pi|ch|py)_[A-Za-z0-9]+"')


def _lock_order(event: events.Claimed) -> str:
    """The payment an event most likely locks: the first payment or charge id in it (a hint, not a rule)."""
    found = _PAYMENT_REF.search(event.body)
    return found.group(0) if found else ""


def process_next(pool: ConnectionPool, settings: Settings, *, now: datetime) -> str | None:
    """Apply the most urgent, oldest due event; return its id, or None when nothing is due."""
    taken = process_batch(pool, settings, now=now, size=1).taken
    return taken[0] if taken else None


@contextmanager
def _savepoint(conn: psycopg.Connection) -> Iterator[None]:
    """One event's savepoint: a failing handler's writes are undone, the failure itself is then recorded.

    One round trip, not psycopg's two (SAVEPOINT, then RELEASE): a savepoint needs no release, since
    the batch's commit ends it, and one of the same name simply nests, so ROLLBACK TO always undoes
    the latest event only. Measured: about 15 % more events per second. Batches stay under 64 events
    by default: more subtransactions than Postgres caches per session slow every session's snapshots.
    """
    conn.execute(SAVEPOINT)
    try:
        yield
    except BaseException:
        conn.execute(ROLLBACK_TO)  # on a broken connection this raises, and the batch is undone instead
        raise


def _apply(
    conn: psycopg.Connection, handler: Handler, event: events.Claimed, settings: Settings, now: datetime
) -> None:
    payload = json.loads(event.body)
    ctx = EventContext(
        event_id=event.id,
        event_type=event.type,
        account=event.account,
        observed_at=ts(payload.get("created")) or event.stripe_created,
        now=now,
        settings=settings,
    )
    handler(conn, payload["data"]["object"], ctx)


def _fail(conn: psycopg.Connection, claimed: events.Claimed, exc: Exception, settings: Settings, now: datetime) -> str:
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
    return "dead" if dead else "failed"
