"""Delivering the Slack outbox: in order per channel, paced, retried, never twice while we live.

A message's row stays locked while it is sent, so two workers never send the same one. If a
worker dies after Slack accepted a message but before the commit, that message is sent again
on restart (Slack's chat.postMessage has no idempotency key): at-least-once, only on a crash.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta
from typing import Any

from psycopg_pool import ConnectionPool
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from domain.retry import backoff, slack_error_is_permanent
from services.metrics import SLACK_DELIVERIES
from store import db, outbox

log = logging.getLogger(__name__)

# Outages, timeouts and configuration problems (a revoked token, the bot not yet invited) are
# retried without end, every 10 minutes at most: the message goes out once Slack or the
# configuration is back. Only a message Slack can never accept as it is gets dead-lettered.
RETRY_BASE_SECONDS = 2.0
RETRY_CAP_SECONDS = 600.0


def build_client(token: str, base_url: str, *, timeout: int = 10) -> WebClient:
    """The process's Slack Web API client, without retries of its own.

    The outbox retries deliveries (with Retry-After and per-channel order); a listener's call
    (views.open) must answer within the trigger's 3 s, and roles fall back to their cache.
    """
    return WebClient(token=token, base_url=base_url, timeout=timeout, retry_handlers=[])


def _request(msg: outbox.Outgoing) -> dict[str, Any]:
    payload = dict(msg.payload)
    payload["channel"] = msg.channel
    if msg.parent_key:
        if msg.method == "chat.update":
            payload["ts"] = msg.parent_ts
        else:
            payload["thread_ts"] = msg.parent_ts
    return payload


def deliver_next(pool: ConnectionPool, client: WebClient, *, now: datetime, pace_seconds: float = 1.0) -> bool:
    """Send the next deliverable message; False when none is due."""
    with db.transaction(pool) as conn:
        msg = outbox.claim(conn, now)
        if msg is None:
            return False
        try:
            response = client.api_call(msg.method, json=_request(msg))
        except SlackApiError as exc:
            _failed(conn, msg, exc, now=now)
            return True
        except OSError as exc:  # timeouts and refused connections (urllib raises OSError subclasses)
            SLACK_DELIVERIES.labels("unreachable").inc()
            _retry_later(conn, msg, f"{type(exc).__name__}: {exc}", now=now)
            return True
        ts = response.get("ts") or response.get("message_ts")
        SLACK_DELIVERIES.labels("sent").inc()
        outbox.sent(conn, msg, ts, now=now, next_at=now + timedelta(seconds=pace_seconds))
        return True


def _failed(conn, msg: outbox.Outgoing, exc: SlackApiError, *, now: datetime) -> None:
    status = exc.response.status_code
    error = (exc.response.data or {}).get("error", "") if isinstance(exc.response.data, dict) else ""
    SLACK_DELIVERIES.labels("ratelimited" if status == 429 else "error").inc()
    if status == 429:
        wait = float(exc.response.headers.get("Retry-After", exc.response.headers.get("retry-after", 1)) or 1)
        log.info("Slack rate-limited %s in %s: waiting %.0f s", msg.method, msg.channel, wait)
        at = now + timedelta(seconds=wait)
        outbox.pace(conn, msg.channel, at)
        outbox.retry(conn, msg, at=at, error="ratelimited", counted=False)
    elif status >= 500 or not slack_error_is_permanent(error):
        _retry_later(conn, msg, f"HTTP {status} {error}".strip(), now=now)
    else:
        log.error("Slack refused message %s for %s: %s; dead-lettered", msg.id, msg.channel, error)
        outbox.dead(conn, msg, error=error or f"HTTP {status}")
        if msg.message_key:
            # Its replies and updates can never find it: give them up too, or they would hold
            # the channel's queue behind them for ever.
            orphans = outbox.dead_children(conn, msg.message_key, error=f"parent message dead-lettered: {error}")
            if orphans:
                log.error("dead-lettered %d replies and updates of message %s", orphans, msg.id)


def _retry_later(conn, msg: outbox.Outgoing, error: str, *, now: datetime) -> None:
    attempts = msg.attempts + 1
    delay = backoff(attempts, base=RETRY_BASE_SECONDS, cap=RETRY_CAP_SECONDS, jitter=random.random())  # noqa: S311
    log.warning("Slack delivery of %s failed (%s); retry in %.0f s", msg.id, error, delay.total_seconds())
    outbox.retry(conn, msg, at=now + delay, error=error)
