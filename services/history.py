"""Looking back: one request in full, and lists of requests, refunds and disputes (Slack, Home tab and API alike)."""

from __future__ import annotations

import logging
from dataclasses import replace

from psycopg_pool import ConnectionPool
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from domain.errors import NotFound
from domain.history import Filter, Page, Position, RequestDetail, timeline
from messages import keys
from store import db
from store import history as store

log = logging.getLogger(__name__)


def request_detail(pool: ConnectionPool, number: int) -> RequestDetail:
    """A request with its timeline from the audit log, its refund and its payment. Raises NotFound."""
    with db.connection(pool) as conn:
        req = store.request(conn, number)
        if req is None:
            raise NotFound(f"There is no refund request #{number}.")
        return RequestDetail(
            request=req,
            steps=tuple(timeline(store.audit_entries(conn, number))),
            refund=store.request_refund(conn, req),
            payment=store.payment(conn, req.payment_id),
            approval_message=store.slack_message(conn, keys.request(number)),
        )


def with_permalink(detail: RequestDetail, slack: WebClient) -> RequestDetail:
    """The detail with a link to its approval message (chat.getPermalink); unchanged when Slack cannot say."""
    if detail.approval_message is None:
        return detail
    channel, ts = detail.approval_message
    try:
        link = slack.chat_getPermalink(channel=channel, message_ts=ts).get("permalink")
    except (SlackApiError, OSError) as exc:
        log.warning("chat.getPermalink for request %s failed: %s", detail.request.id, type(exc).__name__)
        return detail
    return replace(detail, permalink=link if isinstance(link, str) else None)


def requests(pool: ConnectionPool, f: Filter, *, limit: int, after: Position | None = None) -> Page:
    """A page of refund requests, newest first. Raises CursorError for a cursor that is not ours."""
    with db.connection(pool) as conn:
        return store.requests(conn, f, limit=limit, after=after)


def requests_with_total(pool: ConnectionPool, f: Filter, *, limit: int, after: Position | None) -> tuple[Page, int]:
    """A page of refund requests and how many match in all (Slack lists say both)."""
    with db.connection(pool) as conn:
        return store.requests(conn, f, limit=limit, after=after), store.count_requests(conn, f)


def refunds(pool: ConnectionPool, f: Filter, *, limit: int, after: Position | None = None) -> Page:
    """A page of refunds, newest first."""
    with db.connection(pool) as conn:
        return store.refunds(conn, f, limit=limit, after=after)


def disputes(pool: ConnectionPool, f: Filter, *, limit: int, after: Position | None = None) -> Page:
    """A page of disputes, the soonest evidence deadline first."""
    with db.connection(pool) as conn:
        return store.disputes(conn, f, limit=limit, after=after)


def disputes_with_total(pool: ConnectionPool, f: Filter, *, limit: int, after: Position | None) -> tuple[Page, int]:
    """A page of disputes and how many match in all."""
    with db.connection(pool) as conn:
        return store.disputes(conn, f, limit=limit, after=after), store.count_disputes(conn, f)
