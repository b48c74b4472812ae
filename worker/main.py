"""The worker loop: each job (events, Slack queue, refund-request upkeep) runs in its own thread until stopped."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from slack_sdk.errors import SlackApiError

from domain.clock import utcnow
from domain.errors import DatabaseUnavailable
from handlers import backfill, dispatch
from services import connect, home, hooks, oncall, paging, refund_requests, retention, slack_delivery
from services.deps import Deps
from worker import finance

log = logging.getLogger(__name__)


def _loop(name: str, step: Callable[[], bool], stop: threading.Event, idle: float) -> None:
    while not stop.is_set():
        try:
            busy = step()
        except DatabaseUnavailable:
            log.warning("%s: database unavailable; trying again shortly", name)
            busy = False
            stop.wait(1.0)
        except Exception:
            # A job must outlive a bug or a missing migration: say so loudly, then keep going.
            log.exception("%s: unexpected error; retrying in 5 s", name)
            busy = False
            stop.wait(5.0)
        if not busy:
            stop.wait(idle)


def start(deps: Deps, stop: threading.Event, *, idle: float = 0.25) -> list[threading.Thread]:
    """Start the worker's jobs in daemon threads; they end once `stop` is set."""
    settings = deps.settings
    client = deps.slack

    def apply_events() -> bool:
        return bool(dispatch.process_batch(deps.pool, settings, now=utcnow(), size=settings.event_batch_size).taken)

    def deliver_slack() -> bool:
        return slack_delivery.deliver_next(
            deps.pool, client, now=utcnow(), pace_seconds=settings.slack_channel_pace_seconds
        )

    def tend_requests() -> bool:
        now = utcnow()
        refund_requests.expire_due(deps.requests, now=now)
        return refund_requests.recover_next(deps.requests, now=now) is not None

    def watch() -> bool:
        now = utcnow()
        oncall.send_reminders(deps.pool, settings, now)
        oncall.check_incidents(deps.pool, settings, now)
        return False

    def prune() -> bool:
        return retention.prune(deps.pool, settings, now=utcnow()).more

    def refresh_homes() -> bool:
        return home.refresh_stale(deps, utcnow()) > 0

    threads = [
        # Two event threads: while one waits on Postgres, the other runs Python (see EVENT_THREADS).
        *(
            threading.Thread(target=_loop, args=("events", apply_events, stop, idle), name=f"events-{n}", daemon=True)
            for n in range(settings.event_threads)
        ),
        # Home tabs whose content changed are published again within a couple of seconds.
        threading.Thread(target=_loop, args=("home", refresh_homes, stop, max(idle, 2.0)), name="home", daemon=True),
        threading.Thread(target=_loop, args=("slack", deliver_slack, stop, idle), name="slack", daemon=True),
        # Expiry and recovery are not urgent to the second: a few seconds between rounds.
        threading.Thread(
            target=_loop, args=("requests", tend_requests, stop, max(idle, 5.0)), name="requests", daemon=True
        ),
        # Reminders and rate checks every 30 s: plenty against 15-minute windows and 24-hour deadlines.
        threading.Thread(target=_loop, args=("on-call", watch, stop, max(idle, 30.0)), name="on-call", daemon=True),
        # Old events and delivered messages, every 10 minutes, in small batches (a busy round goes on at once).
        threading.Thread(
            target=_loop, args=("retention", prune, stop, max(idle, 600.0)), name="retention", daemon=True
        ),
    ]
    threads += _oncall_threads(deps, stop, idle)
    threads += finance.threads(deps, stop, idle, _loop)  # the audit seal, reconciliation, the monthly export
    for thread in threads:
        thread.start()
    return threads


def _oncall_threads(deps: Deps, stop: threading.Event, idle: float) -> list[threading.Thread]:
    """PagerDuty's queue, the outgoing hooks' queue, and the delivery check (issue #13)."""
    settings = deps.settings
    threads = []
    pagerduty = paging.build_client(settings)
    if pagerduty is not None:

        def page() -> bool:
            return paging.deliver_next(deps.pool, pagerduty, now=utcnow())

        threads.append(
            threading.Thread(target=_loop, args=("pagerduty", page, stop, idle), name="pagerduty", daemon=True)
        )
    sender = hooks.build_sender(settings)
    if sender is not None:

        def send_hooks() -> bool:
            return hooks.deliver_next(deps.pool, sender, settings, now=utcnow())

        threads.append(
            threading.Thread(target=_loop, args=("hooks", send_hooks, stop, idle), name="hooks", daemon=True)
        )
    # The first check waits a full interval: a worker that just started has not missed anything yet.
    due = [utcnow() + settings.delivery_check_every]

    def check_deliveries() -> bool:
        now = utcnow()
        if now < due[0]:
            return False
        due[0] = now + settings.delivery_check_every
        connect.sync_accounts(deps.pool, deps.stripe)
        backfill.check_deliveries(deps.pool, deps.stripe.client, settings, now)
        return False

    threads.append(
        threading.Thread(
            target=_loop, args=("deliveries", check_deliveries, stop, max(idle, 30.0)), name="deliveries", daemon=True
        )
    )
    return threads


def check_slack_token(deps: Deps) -> None:
    """Say clearly at start when the bot token is wrong, instead of failing on every message."""
    try:
        deps.slack.auth_test()
    except SlackApiError as exc:
        log.error(
            "Slack rejected SLACK_BOT_TOKEN (%s): messages will wait in the queue until it is fixed",
            exc.response.get("error"),
        )
    except OSError as exc:
        log.warning("Slack unreachable at start (%s); messages wait in the queue", type(exc).__name__)
