"""Lists of refund requests, refunds and disputes, and one request's record: one query layer for Slack, the
Home tab and the API.

Every list is keyset-paginated (WHERE (sort key, id) is past the last row seen, ORDER BY it, LIMIT n)
over an index that matches its filter (migration 0007), so a page deep in a long list costs what the
first one does, and rows added meanwhile never shift a page. Statements are put together from fixed
fragments, one per filter that is set, so each shape gets its own plan and uses its own index.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import args_row, class_row

from domain.history import AuditEntry, CursorError, Filter, Page, Position
from domain.models import Dispute, Payment, Refund, RefundRequest

REQUEST_COLUMNS = ", ".join(f.name for f in fields(RefundRequest))
REFUND_COLUMNS = ", ".join(f.name for f in fields(Refund))
DISPUTE_COLUMNS = ", ".join(f.name for f in fields(Dispute))
PAYMENT_COLUMNS = ", ".join(f.name for f in fields(Payment))
# Disputes without an evidence deadline sort last; the same expression as the index disputes_by_deadline.
NO_DEADLINE = datetime(9999, 12, 31, tzinfo=UTC)
_DUE = "coalesce(evidence_due_by, '9999-12-31 00:00:00+00')"

# --- requests ------------------------------------------------------------------------------------------

_REQUEST_WHERE = {
    "status": "status = %(status)s",
    "statuses": "status = ANY(%(statuses)s)",
    "requested_by": "requested_by = %(requested_by)s",
    "since": "created_at >= %(since)s",
    "until": "created_at < %(until)s",
    "after": "(created_at, id) < (%(after_at)s, %(after_id)s)",
}
LIST_REQUESTS = (
    "SELECT "
    + REQUEST_COLUMNS
    + " FROM refund_requests WHERE {where} ORDER BY created_at DESC, id DESC LIMIT %(limit)s"
)
COUNT_REQUESTS = "SELECT count(*) FROM refund_requests WHERE {where}"

# --- refunds (requested_by: those made by a person's requests) ------------------------------------------

_REFUND_WHERE = {
    "status": "status = %(status)s",
    "statuses": "status = ANY(%(statuses)s)",
    "requested_by": "request_id IN (SELECT id FROM refund_requests WHERE requested_by = %(requested_by)s)",
    "since": "stripe_created >= %(since)s",
    "until": "stripe_created < %(until)s",
    "after": "(stripe_created, id) < (%(after_at)s, %(after_id)s)",
}
LIST_REFUNDS = (
    "SELECT " + REFUND_COLUMNS + " FROM refunds WHERE {where} ORDER BY stripe_created DESC, id DESC LIMIT %(limit)s"
)

# --- disputes (requested_by: their owner), the soonest deadline first -----------------------------------

_DISPUTE_WHERE = {
    "status": "status = %(status)s",
    "statuses": "status = ANY(%(statuses)s)",
    "requested_by": "owner = %(requested_by)s",
    "owner_or_nobody": "(owner = %(requested_by)s OR owner IS NULL)",
    "since": "stripe_created >= %(since)s",
    "until": "stripe_created < %(until)s",
    "after": f"({_DUE}, id) > (%(after_at)s, %(after_id)s)",
}
LIST_DISPUTES = "SELECT " + DISPUTE_COLUMNS + " FROM disputes WHERE {where} ORDER BY " + _DUE + ", id LIMIT %(limit)s"
COUNT_DISPUTES = "SELECT count(*) FROM disputes WHERE {where}"

# --- one request ----------------------------------------------------------------------------------------

GET_REQUEST = "SELECT " + REQUEST_COLUMNS + " FROM refund_requests WHERE id = %(id)s"
REQUEST_AUDIT = """
SELECT at, actor, surface, action, details FROM audit_log WHERE subject = %(subject)s ORDER BY at, id
"""
REQUEST_REFUND = (
    "SELECT " + REFUND_COLUMNS + " FROM refunds WHERE request_id = %(id)s OR id = %(refund_id)s "
    "ORDER BY stripe_created DESC LIMIT 1"
)
GET_PAYMENT = "SELECT " + PAYMENT_COLUMNS + " FROM payments WHERE id = %(id)s"
SLACK_MESSAGE = "SELECT channel, ts FROM slack_messages WHERE key = %(key)s"


def _where(fragments: dict[str, str], f: Filter, after: Position | None, *, disputes: bool = False) -> tuple[str, dict]:
    parts: list[str] = []
    params: dict = {}
    if len(f.statuses) == 1:
        parts.append(fragments["status"])
        params["status"] = f.statuses[0]
    elif f.statuses:
        parts.append(fragments["statuses"])
        params["statuses"] = list(f.statuses)
    if f.requested_by is not None:
        parts.append(fragments["owner_or_nobody" if disputes and f.unowned_too else "requested_by"])
        params["requested_by"] = f.requested_by
    if f.since is not None:
        parts.append(fragments["since"])
        params["since"] = f.since
    if f.until is not None:
        parts.append(fragments["until"])
        params["until"] = f.until
    if after is not None:
        parts.append(fragments["after"])
        params["after_at"] = after.at
        params["after_id"] = after.id
    return " AND ".join(parts) or "true", params


def _page(rows: list, limit: int, position: Callable[[Any], Position]) -> Page:
    """Rows past `limit` only say there is a next page; it starts after the last row shown."""
    shown = rows[:limit]
    more = len(rows) > limit
    return Page(tuple(shown), position(shown[-1]) if more and shown else None)


def requests_query(f: Filter, *, limit: int, after: Position | None = None) -> tuple[str, dict]:
    """The statement and parameters of a page of requests (one more row than shown: it says a next page exists)."""
    if after is not None and not after.id.isdigit():
        raise CursorError("cursor does not point at a refund request")
    where, params = _where(_REQUEST_WHERE, f, after)
    if after is not None:
        params["after_id"] = int(after.id)
    return LIST_REQUESTS.format(where=where), {**params, "limit": limit + 1}


def requests(conn: psycopg.Connection, f: Filter, *, limit: int, after: Position | None = None) -> Page:
    """A page of refund requests, newest first."""
    sql, params = requests_query(f, limit=limit, after=after)
    # Positional (the columns are the dataclass's fields in order): a third of class_row's cost per row.
    with conn.cursor(row_factory=args_row(RefundRequest)) as cur:
        rows = cur.execute(sql, params).fetchall()
    return _page(rows, limit, lambda r: Position(r.created_at, str(r.id)))


def count_requests(conn: psycopg.Connection, f: Filter) -> int:
    """How many refund requests the filter matches in all."""
    where, params = _where(_REQUEST_WHERE, f, None)
    return int(conn.execute(COUNT_REQUESTS.format(where=where), params).fetchone()[0])


def refunds(conn: psycopg.Connection, f: Filter, *, limit: int, after: Position | None = None) -> Page:
    """A page of refunds, newest first."""
    where, params = _where(_REFUND_WHERE, f, after)
    with conn.cursor(row_factory=class_row(Refund)) as cur:
        rows = cur.execute(LIST_REFUNDS.format(where=where), {**params, "limit": limit + 1}).fetchall()
    return _page(rows, limit, lambda r: Position(r.stripe_created, r.id))


def disputes(conn: psycopg.Connection, f: Filter, *, limit: int, after: Position | None = None) -> Page:
    """A page of disputes, the soonest evidence deadline first (those without one last)."""
    where, params = _where(_DISPUTE_WHERE, f, after, disputes=True)
    with conn.cursor(row_factory=class_row(Dispute)) as cur:
        rows = cur.execute(LIST_DISPUTES.format(where=where), {**params, "limit": limit + 1}).fetchall()
    return _page(rows, limit, lambda d: Position(d.evidence_due_by or NO_DEADLINE, d.id))


def count_disputes(conn: psycopg.Connection, f: Filter) -> int:
    """How many disputes the filter matches in all."""
    where, params = _where(_DISPUTE_WHERE, f, None, disputes=True)
    return int(conn.execute(COUNT_DISPUTES.format(where=where), params).fetchone()[0])


def request(conn: psycopg.Connection, number: int) -> RefundRequest | None:
    """A refund request by number."""
    with conn.cursor(row_factory=class_row(RefundRequest)) as cur:
        return cur.execute(GET_REQUEST, {"id": number}).fetchone()


def audit_entries(conn: psycopg.Connection, number: int) -> list[AuditEntry]:
    """The audit records about a request, oldest first."""
    with conn.cursor(row_factory=class_row(AuditEntry)) as cur:
        return cur.execute(REQUEST_AUDIT, {"subject": f"request:{number}"}).fetchall()


def request_refund(conn: psycopg.Connection, req: RefundRequest) -> Refund | None:
    """The Stripe refund a request made, as we last saw it."""
    with conn.cursor(row_factory=class_row(Refund)) as cur:
        return cur.execute(REQUEST_REFUND, {"id": req.id, "refund_id": req.stripe_refund_id}).fetchone()


def payment(conn: psycopg.Connection, payment_id: str) -> Payment | None:
    """A stored payment."""
    with conn.cursor(row_factory=class_row(Payment)) as cur:
        return cur.execute(GET_PAYMENT, {"id": payment_id}).fetchone()


def slack_message(conn: psycopg.Connection, key: str) -> tuple[str, str] | None:
    """(channel, ts) of a delivered Slack message, by its outbox key."""
    row = conn.execute(SLACK_MESSAGE, {"key": key}).fetchone()
    return (row[0], row[1]) if row else None
