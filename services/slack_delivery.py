"""Delivering the Slack outbox: in order per channel, urgent channels first, paced, retried, never twice.

A message's row stays locked while it is sent, so two workers never send the same one. Slack's
chat.postMessage has no idempotency key, so each post carries its outbox row's delivery key in the
message `metadata`, and a row of slack_unsure is committed (on a second connection) just before
the post. If the outcome is then unknown (the call timed out, Slack answered 5xx, or the worker
died after Slack accepted the message but before our commit), the next attempt finds that row and
first looks for the key in the channel's history (conversations.history, or conversations.replies
for a thread reply, with include_all_metadata) around the time of the uncertain posts: found, its
ts is adopted (replies and updates go under it) and nothing is posted again.

Not covered: messages to a person (a user ID as channel: their DM with the app needs im:history
and conversations.open to be read back) are posted again after an uncertain attempt, as before;
chat.update is simply repeated (same content); ephemeral messages cannot be looked up.
"""

from __future__ import annotations

import logging
import random
import urllib.error
from datetime import datetime, timedelta
from typing import Any

import psycopg
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

METADATA_EVENT = "refund_desk_outbox"
# Where to look for an uncertain post: Slack's clock and ours differ a little, and a post may be
# accepted as late as the client's timeout after we sent it.
LOOKUP_MARGIN = timedelta(minutes=5)
LOOKUP_PAGE = 200
LOOKUP_PAGES = 10
# Channels we can read back with channels:history and groups:history (public and private channels).
_READABLE = ("C", "G")


def build_client(token: str, base_url: str, *, timeout: int = 10) -> WebClient:
    """The process's Slack Web API client, without retries of its own.

    The outbox retries deliveries (with Retry-After and per-channel order); a listener's call
    (views.open) must answer within the trigger's 3 s, and roles fall back to their cache.
    """
    return WebClient(token=token, base_url=base_url, timeout=timeout, retry_handlers=[])


def metadata(delivery_key: str) -> dict[str, Any]:
    """The message metadata every post carries: how the message is found again after an uncertain post."""
    return {"event_type": METADATA_EVENT, "event_payload": {"outbox_key": delivery_key}}


def _request(msg: outbox.Outgoing) -> dict[str, Any]:
    payload = dict(msg.payload)
    payload["channel"] = msg.channel
    if msg.parent_key:
        if msg.method == "chat.update":
            payload["ts"] = msg.parent_ts
        else:
            payload["thread_ts"] = msg.parent_ts
    if msg.method == "chat.postMessage":
        payload["metadata"] = metadata(msg.delivery_key)
    return payload


class _LookupFailed(Exception):
    """Slack could not be asked whether an uncertain post got through; try again later."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(str(exc))
        self.exc = exc


def deliver_next(pool: ConnectionPool, client: WebClient, *, now: datetime, pace_seconds: float = 1.0) -> bool:
    """Send the next deliverable message; False when none is due."""
    with db.transaction(pool) as conn:
        msg = outbox.claim(conn, now)
        if msg is None:
            return False
        posting = msg.method == "chat.postMessage"
        if posting and msg.unsure_since is not None:
            try:
                found = _find_posted(client, msg)
            except _LookupFailed as failed:
                if isinstance(failed.exc, SlackApiError):
                    _failed(conn, msg, failed.exc, now=now, what="looking for an uncertain post")
                else:
                    SLACK_DELIVERIES.labels("unreachable").inc()
                    _retry_later(conn, msg, f"{type(failed.exc).__name__}: {failed.exc}", now=now)
                return True
            if found:
                log.info("message %s was already in %s (ts %s): not posted again", msg.id, msg.channel, found)
                SLACK_DELIVERIES.labels("found").inc()
                outbox.sent(conn, msg, found, now=now, next_at=now, posted=False)
                return True
        if posting:
            # Committed before the post, whatever happens to this transaction: a crash or a timeout
            # from here on leaves a trace that makes the next attempt look before posting.
            with db.connection(pool) as side:
                outbox.unsure(side, msg, now)
        try:
            response = client.api_call(msg.method, json=_request(msg))
        except SlackApiError as exc:
            _failed(conn, msg, exc, now=now)
            return True
        except OSError as exc:  # timeouts and refused connections (urllib raises OSError subclasses)
            SLACK_DELIVERIES.labels("unreachable").inc()
            if posting and msg.unsure_since is None and _never_sent(exc):
                outbox.sure(conn, msg)
            _retry_later(conn, msg, f"{type(exc).__name__}: {exc}", now=now)
            return True
        ts = response.get("ts") or response.get("message_ts")
        SLACK_DELIVERIES.labels("sent").inc()
        outbox.sent(conn, msg, ts, now=now, next_at=now + timedelta(seconds=pace_seconds))
        return True


def _never_sent(exc: OSError) -> bool:
    """Whether the request surely never reached Slack (refused), unlike a timeout, whose outcome is unknown."""
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    return isinstance(reason, ConnectionRefusedError)


def _find_posted(client: WebClient, msg: outbox.Outgoing) -> str | None:
    """The ts of the message if an uncertain earlier post reached Slack, found by its delivery key."""
    if not msg.channel.startswith(_READABLE):
        return None  # a person's DM: we cannot read it back (see the module's docstring)
    since = msg.unsure_since or msg.unsure_until
    until = msg.unsure_until or since
    if since is None or until is None:
        return None
    window = {
        "oldest": f"{(since - LOOKUP_MARGIN).timestamp():.6f}",
        "latest": f"{(until + LOOKUP_MARGIN).timestamp():.6f}",
        "inclusive": True,
        "include_all_metadata": True,
        "limit": LOOKUP_PAGE,
    }
    cursor: str | None = None
    for _ in range(LOOKUP_PAGES):
        try:
            if msg.parent_key:  # a thread reply is only in its thread
                page = client.conversations_replies(channel=msg.channel, ts=msg.parent_ts, cursor=cursor, **window)
            else:
                page = client.conversations_history(channel=msg.channel, cursor=cursor, **window)
        except SlackApiError as exc:
            status = exc.response.status_code
            if status == 429 or status >= 500:
                raise _LookupFailed(exc) from exc
            # The install cannot read the channel (no channels:history or groups:history yet, the
            # bot removed): post again, as before this lookup existed, and say so.
            log.warning(
                "cannot look for message %s in %s (%s): posting it again, it may appear twice",
                msg.id,
                msg.channel,
                (exc.response.data or {}).get("error") if isinstance(exc.response.data, dict) else status,
            )
            return None
        except OSError as exc:
            raise _LookupFailed(exc) from exc
        for message in page.get("messages") or []:
            if _key_of(message) == msg.delivery_key:
                return message.get("ts")
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not page.get("has_more") or not cursor:
            return None
    log.warning("message %s: too many messages to look through in %s; posting it", msg.id, msg.channel)
    return None


def _key_of(message: dict[str, Any]) -> str | None:
    """The delivery key a message carries in its metadata, if we posted it."""
    meta = message.get("metadata") or {}
    if meta.get("event_type") != METADATA_EVENT:
        return None
    return (meta.get("event_payload") or {}).get("outbox_key")


def _failed(
    conn: psycopg.Connection, msg: outbox.Outgoing, exc: SlackApiError, *, now: datetime, what: str = ""
) -> None:
    status = exc.response.status_code
    error = (exc.response.data or {}).get("error", "") if isinstance(exc.response.data, dict) else ""
    SLACK_DELIVERIES.labels("ratelimited" if status == 429 else "error").inc()
    if status < 500 and not what and msg.method == "chat.postMessage" and msg.unsure_since is None:
        outbox.sure(conn, msg)  # Slack answered: this post surely did not go out, and no earlier one was unsure
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


def _retry_later(conn: psycopg.Connection, msg: outbox.Outgoing, error: str, *, now: datetime) -> None:
    attempts = msg.attempts + 1
    delay = backoff(attempts, base=RETRY_BASE_SECONDS, cap=RETRY_CAP_SECONDS, jitter=random.random())  # noqa: S311
    log.warning("Slack delivery of %s failed (%s); retry in %.0f s", msg.id, error, delay.total_seconds())
    outbox.retry(conn, msg, at=now + delay, error=error)
