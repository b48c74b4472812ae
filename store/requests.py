"""Refund requests: the approval workflow's guarded status changes.

Every change is an UPDATE … WHERE status = <expected> RETURNING: no row back means someone else
changed it first. Money is reserved under a lock on the payment row, so concurrent requests and
approvals of one payment are counted one after the other.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime

import psycopg
from psycopg.rows import class_row

from domain.models import Refund, RefundRequest

COLUMNS = ", ".join(f.name for f in fields(RefundRequest))

LOCK_PAYMENT = "SELECT id FROM payments WHERE id = %(payment_id)s FOR UPDATE"

CREATE = f"""
INSERT INTO refund_requests (payment_id, charge_id, account, amount, currency, reason, note, requested_by,
                             requested_via, approvals_needed, status, approvals, decided_by, decided_at, expires_at,
                             created_at, updated_at)
VALUES (%(payment_id)s, %(charge_id)s, %(account)s, %(amount)s, %(currency)s, %(reason)s, %(note)s, %(requested_by)s,
        %(requested_via)s, %(approvals_needed)s,
        CASE WHEN %(approvals_needed)s = 0 THEN 'approved' ELSE 'pending' END,
        CASE WHEN %(approvals_needed)s = 0 THEN ARRAY[%(requested_by)s] ELSE '{{}}'::text[] END,
        CASE WHEN %(approvals_needed)s = 0 THEN %(requested_by)s END,
        CASE WHEN %(approvals_needed)s = 0 THEN %(now)s END,
        %(expires_at)s, %(now)s, %(now)s)
ON CONFLICT DO NOTHING
RETURNING {COLUMNS}
"""

GET = f"SELECT {COLUMNS} FROM refund_requests WHERE id = %(id)s"
PENDING_FOR_PAYMENT = f"SELECT {COLUMNS} FROM refund_requests WHERE payment_id = %(payment_id)s AND status = 'pending'"

# An approval counts once per approver and never the requester's; the last one needed approves.
APPROVE = f"""
UPDATE refund_requests
SET approvals = approvals || %(user)s::text,
    status = CASE WHEN cardinality(approvals) + 1 >= approvals_needed THEN 'approved' ELSE 'pending' END,
    decided_by = CASE WHEN cardinality(approvals) + 1 >= approvals_needed THEN %(user)s END,
    decided_at = CASE WHEN cardinality(approvals) + 1 >= approvals_needed THEN %(now)s END,
    updated_at = %(now)s
WHERE id = %(id)s AND status = 'pending' AND requested_by <> %(user)s AND NOT (%(user)s = ANY(approvals))
RETURNING {COLUMNS}
"""

REJECT = f"""
UPDATE refund_requests SET status = 'rejected', reject_reason = %(reason)s, decided_by = %(user)s,
       decided_at = %(now)s, updated_at = %(now)s
WHERE id = %(id)s AND status = 'pending' AND requested_by <> %(user)s
RETURNING {COLUMNS}
"""

MARK_SENT = f"""
UPDATE refund_requests SET status = 'sent', updated_at = %(now)s
WHERE id = %(id)s AND status = 'approved'
RETURNING {COLUMNS}
"""

TOUCH_SENT = f"""
UPDATE refund_requests SET updated_at = %(now)s WHERE id = %(id)s AND status = 'sent' RETURNING {COLUMNS}
"""

FAIL = f"""
UPDATE refund_requests SET status = 'failed', failure_message = %(message)s, updated_at = %(now)s
WHERE id = %(id)s AND status IN ('approved', 'sent') AND stripe_refund_id IS NULL
RETURNING {COLUMNS}
"""

# What Stripe says of the refund moves the request on: sent → succeeded / failed / canceled, and
# succeeded → failed (Stripe allows a refund to fail after it succeeded). Finished stays finished.
FOLLOW_REFUND = f"""
UPDATE refund_requests
SET stripe_refund_id = coalesce(stripe_refund_id, %(refund_id)s),
    status = %(status)s,
    failure_message = CASE WHEN %(status)s = 'failed' THEN %(message)s ELSE failure_message END,
    updated_at = %(now)s
WHERE id = %(id)s
  AND (stripe_refund_id IS NULL OR stripe_refund_id = %(refund_id)s)
  AND (status IN ('approved', 'sent') AND (status <> %(status)s OR stripe_refund_id IS NULL)
       OR status = 'succeeded' AND %(status)s = 'failed')
RETURNING {COLUMNS}
"""

EXPIRE = f"""
UPDATE refund_requests SET status = 'expired', updated_at = %(now)s
WHERE status = 'pending' AND expires_at <= %(now)s
RETURNING {COLUMNS}
"""

OPEN = f"""
SELECT {COLUMNS} FROM refund_requests WHERE status IN ('pending', 'approved', 'sent') ORDER BY created_at LIMIT 50
"""

STUCK = f"""
SELECT {COLUMNS} FROM refund_requests
WHERE (status = 'approved' OR status = 'sent' AND stripe_refund_id IS NULL) AND updated_at <= %(before)s
ORDER BY updated_at
LIMIT 1
FOR UPDATE SKIP LOCKED
"""

MADE = f"""
SELECT {COLUMNS} FROM refund_requests
WHERE idempotency_key = %(key)s OR stripe_refund_id = %(refund_id)s
ORDER BY stripe_refund_id = %(refund_id)s DESC NULLS LAST
LIMIT 1
"""

PRIOR = """
SELECT coalesce(sum(amount) FILTER (WHERE requested_by = %(user)s AND approvals_needed = 0), 0),
       coalesce(sum(amount), 0)
FROM refund_requests
WHERE payment_id = %(payment_id)s AND status IN ('pending', 'approved', 'sent', 'succeeded')
"""

STATS = """
SELECT status, currency, count(*), sum(amount) FROM refund_requests
WHERE created_at >= %(since)s GROUP BY status, currency ORDER BY status, currency
"""


def _one(conn: psycopg.Connection, sql: str, params: dict) -> RefundRequest | None:
    with conn.cursor(row_factory=class_row(RefundRequest)) as cur:
        return cur.execute(sql, params).fetchone()


def _all(conn: psycopg.Connection, sql: str, params: dict) -> list[RefundRequest]:
    with conn.cursor(row_factory=class_row(RefundRequest)) as cur:
        return cur.execute(sql, params).fetchall()


def lock_payment(conn: psycopg.Connection, payment_id: str) -> bool:
    """Lock the payment row: money on one payment is reserved one request at a time."""
    return conn.execute(LOCK_PAYMENT, {"payment_id": payment_id}).fetchone() is not None


def create(conn: psycopg.Connection, **values) -> RefundRequest | None:
    """Insert a request (pending, or approved at once); None when one is already pending for the payment."""
    return _one(conn, CREATE, values)


def get(conn: psycopg.Connection, request_id: int) -> RefundRequest | None:
    """A request by id."""
    return _one(conn, GET, {"id": request_id})


def pending_for(conn: psycopg.Connection, payment_id: str) -> RefundRequest | None:
    """The pending request of a payment, if any."""
    return _one(conn, PENDING_FOR_PAYMENT, {"payment_id": payment_id})


def approve(conn: psycopg.Connection, request_id: int, user: str, now: datetime) -> RefundRequest | None:
    """Add an approval; None when the request is no longer pending or this user may not add one."""
    return _one(conn, APPROVE, {"id": request_id, "user": user, "now": now})


def reject(conn: psycopg.Connection, request_id: int, user: str, reason: str, now: datetime) -> RefundRequest | None:
    """Reject a pending request; None when someone decided first."""
    return _one(conn, REJECT, {"id": request_id, "user": user, "reason": reason, "now": now})


def mark_sent(conn: psycopg.Connection, request_id: int, now: datetime) -> RefundRequest | None:
    """approved → sent, just before calling Stripe; None when someone else is sending it."""
    return _one(conn, MARK_SENT, {"id": request_id, "now": now})


def touch_sent(conn: psycopg.Connection, request_id: int, now: datetime) -> RefundRequest | None:
    """Note another attempt at a sent-but-unconfirmed request."""
    return _one(conn, TOUCH_SENT, {"id": request_id, "now": now})


def fail(conn: psycopg.Connection, request_id: int, message: str, now: datetime) -> RefundRequest | None:
    """End a request whose refund Stripe refused (no money moved)."""
    return _one(conn, FAIL, {"id": request_id, "message": message[:1000], "now": now})


def follow_refund(
    conn: psycopg.Connection, request_id: int, refund_id: str, status: str, message: str | None, now: datetime
) -> RefundRequest | None:
    """Move a request along with its Stripe refund; None when nothing changes."""
    return _one(
        conn,
        FOLLOW_REFUND,
        {"id": request_id, "refund_id": refund_id, "status": status, "message": message, "now": now},
    )


def prior(conn: psycopg.Connection, payment_id: str, user: str) -> tuple[int, int]:
    """On a payment: what this user refunded without a second approver, and what all live requests add up to."""
    row = conn.execute(PRIOR, {"payment_id": payment_id, "user": user}).fetchone()
    return int(row[0]), int(row[1])


def made(conn: psycopg.Connection, refund: Refund, key: str | None) -> RefundRequest | None:
    """The request that made this refund: named by the key in its metadata (or already linked),
    and for the same payment and amount; anything else is not ours, whatever its metadata says."""
    req = _one(conn, MADE, {"key": key, "refund_id": refund.id})
    if req is None:
        return None
    same_payment = req.payment_id in (refund.payment_intent_id, refund.charge_id) or (
        req.charge_id is not None and req.charge_id == refund.charge_id
    )
    return req if same_payment and req.amount == refund.amount else None


def expire(conn: psycopg.Connection, now: datetime) -> list[RefundRequest]:
    """Expire every pending request whose time is up."""
    return _all(conn, EXPIRE, {"now": now})


def open_requests(conn: psycopg.Connection) -> list[RefundRequest]:
    """Pending, approved and sent requests, oldest first."""
    return _all(conn, OPEN, {})


def claim_stuck(conn: psycopg.Connection, before: datetime) -> RefundRequest | None:
    """A request left approved or sent-without-refund since before `before`, locked for recovery."""
    return _one(conn, STUCK, {"before": before})


def stats(conn: psycopg.Connection, since: datetime) -> list[tuple[str, str, int, int]]:
    """(status, currency, count, sum) of requests made since `since`."""
    return conn.execute(STATS, {"since": since}).fetchall()
