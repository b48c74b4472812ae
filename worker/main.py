"""The worker loop: each job (events, Slack queue, refund-request upkeep) runs in its own thread until stopped."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from slack_sdk.errors import SlackApiError

from domain.clock import utcnow
from domain.errors import DatabaseUnavailable
from handlers import dispatch
from services import oncall, refund_requests, slack_delivery
from services.deps import Deps

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
        return dispatch.process_next(deps.pool, settings, now=utcnow()) is not None

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

    threads = [
        threading.Thread(target=_loop, args=("events", apply_events, stop, idle), name="events", daemon=True),
        threading.Thread(target=_loop, args=("slack", deliver_slack, stop, idle), name="slack", daemon=True),
        # Expiry and recovery are not urgent to the second: a few seconds between rounds.
        threading.Thread(
            target=_loop, args=("requests", tend_requests, stop, max(idle, 5.0)), name="requests", daemon=True
        ),
        # Reminders and rate checks every 30 s: plenty against 15-minute windows and 24-hour deadlines.
        threading.Thread(target=_loop, args=("on-call", watch, stop, max(idle, 30.0)), name="on-call", daemon=True),
    ]
    for thread in threads:
        thread.start()
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
