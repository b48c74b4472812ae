"""Payments, refunds and disputes as last seen from Stripe, and the lookup view over them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Generic, TypeVar

import psycopg
from psycopg.rows import class_row, dict_row

from domain.ids import kind_of
from domain.models import Dispute, Payment, PaymentView, Refund, RequestSummary
from domain.ordering import merge_dispute, merge_payment, merge_refund

T = TypeVar("T")


# The statements below are built once at import from dataclass field names (never from input).
def _columns(cls: type) -> list[str]:
    return [f.name for f in fields(cls) if f.name != "synced_at"]


def _insert_sql(table: str, cls: type) -> str:
    cols = _columns(cls)
    return (
        f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(f'%({c})s' for c in cols)}) "  # noqa: S608
        "ON CONFLICT (id) DO NOTHING RETURNING id"
    )


def _update_sql(table: str, cls: type) -> str:
    cols = [c for c in _columns(cls) if c != "id"]
    sets = ", ".join(f"{c} = %({c})s" for c in cols)
    return f"UPDATE {table} SET {sets}, synced_at = now() WHERE id = %(id)s"  # noqa: S608


def _lock_sql(table: str, cls: type) -> str:
    names = ", ".join(f.name for f in fields(cls))
    return f"SELECT {names} FROM {table} WHERE id = %(id)s FOR UPDATE"  # noqa: S608


INSERT_PAYMENT = _insert_sql("payments", Payment)
UPDATE_PAYMENT = _update_sql("payments", Payment)
LOCK_PAYMENT = _lock_sql("payments", Payment)
INSERT_REFUND = _insert_sql("refunds", Refund)
UPDATE_REFUND = _update_sql("refunds", Refund)
LOCK_REFUND = _lock_sql("refunds", Refund)
INSERT_DISPUTE = _insert_sql("disputes", Dispute)
UPDATE_DISPUTE = _update_sql("disputes", Dispute)
LOCK_DISPUTE = _lock_sql("disputes", Dispute)
GET_DISPUTE = LOCK_DISPUTE.removesuffix(" FOR UPDATE")


# One round trip for everything a lookup shows, whichever id the person gave: the key CTE turns a
# refund or dispute id into its payment's id.
_VIEW = """
WITH k AS (
    SELECT %(id)s::text AS key WHERE %(kind)s = 'payment'
    UNION ALL
    SELECT coalesce(payment_intent_id, charge_id) FROM refunds WHERE %(kind)s = 'refund' AND id = %(id)s
    UNION ALL
    SELECT coalesce(payment_intent_id, charge_id) FROM disputes WHERE %(kind)s = 'dispute' AND id = %(id)s
), p AS (
    SELECT payments.* FROM payments, k WHERE payments.id = k.key
    UNION ALL
    SELECT payments.* FROM payments, k WHERE payments.charge_id = k.key AND payments.id <> k.key
    LIMIT 1
)
SELECT p.*,
    (SELECT coalesce(json_agg(r ORDER BY r.stripe_created, r.id), '[]')
       FROM refunds r
      WHERE r.payment_intent_id = p.payment_intent_id OR r.charge_id = p.charge_id) AS _refunds,
    (SELECT coalesce(json_agg(d ORDER BY d.stripe_created, d.id), '[]')
       FROM disputes d
      WHERE d.payment_intent_id = p.payment_intent_id OR d.charge_id = p.charge_id) AS _disputes,
    (SELECT coalesce(json_agg(json_build_object(
                'id', q.id, 'amount', q.amount, 'currency', q.currency, 'status', q.status,
                'requested_by', q.requested_by, 'stripe_refund_id', q.stripe_refund_id) ORDER BY q.id), '[]')
       FROM refund_requests q
      WHERE q.payment_id = p.id AND q.status IN ('pending', 'approved', 'sent')) AS _requests
FROM p
"""


@dataclass(frozen=True)
class Saved(Generic[T]):
    """The outcome of saving a snapshot: the record before and after (after is None: no change)."""

    before: T | None
    after: T | None

    @property
    def changed(self) -> bool:
        """Whether the snapshot changed what we hold."""
        return self.after is not None


def _params(record: Any) -> dict[str, Any]:
    # A shallow copy of the fields: dataclasses.asdict deep-copies every value, a measurable share of
    # the worker's time per event (bench/README.md, "Worker").
    return {f.name: getattr(record, f.name) for f in fields(record)}


def _save(
    conn: psycopg.Connection, record: T, merge: Callable[[T | None, T], T | None], insert: str, lock: str, update: str
) -> Saved[T]:
    # Insert first so concurrent savers of a new id meet on the primary key, then lock and merge.
    params = _params(record)
    if conn.execute(insert, params).fetchone() is not None:
        return Saved(None, record)
    with conn.cursor(row_factory=class_row(type(record))) as cur:
        current = cur.execute(lock, params).fetchone()
    merged = merge(current, record)
    if merged is None:
        return Saved(current, None)
    conn.execute(update, _params(merged))
    return Saved(current, merged)


def save_payment(conn: psycopg.Connection, payment: Payment) -> Saved[Payment]:
    """Merge a payment snapshot into what we hold (an older one changes nothing)."""
    return _save(conn, payment, merge_payment, INSERT_PAYMENT, LOCK_PAYMENT, UPDATE_PAYMENT)


def save_refund(conn: psycopg.Connection, refund: Refund) -> Saved[Refund]:
    """Merge a refund snapshot into what we hold (status only moves forward)."""
    return _save(conn, refund, merge_refund, INSERT_REFUND, LOCK_REFUND, UPDATE_REFUND)


def save_dispute(conn: psycopg.Connection, dispute: Dispute) -> Saved[Dispute]:
    """Merge a dispute snapshot into what we hold (the Slack owner is kept)."""
    return _save(conn, dispute, merge_dispute, INSERT_DISPUTE, LOCK_DISPUTE, UPDATE_DISPUTE)


def get_dispute(conn: psycopg.Connection, dispute_id: str) -> Dispute | None:
    """A stored dispute."""
    with conn.cursor(row_factory=class_row(Dispute)) as cur:
        return cur.execute(GET_DISPUTE, {"id": dispute_id}).fetchone()


def _view_from_row(row: dict[str, Any], focus: str | None) -> PaymentView:
    return PaymentView(
        payment=Payment(**{name: row[name] for name in _PAYMENT_FIELDS}),
        refunds=_from_json(Refund, row["_refunds"]),
        disputes=_from_json(Dispute, row["_disputes"]),
        requests=_from_json(RequestSummary, row["_requests"]),
        focus=focus,
    )


_PAYMENT_FIELDS = [f.name for f in fields(Payment)]


def _from_json(cls: type, items: list[dict[str, Any]]) -> tuple:
    names = {f.name for f in fields(cls)}
    out = []
    for item in items:
        values = {k: v for k, v in item.items() if k in names}
        for key in ("stripe_created", "observed_at", "charge_observed_at", "synced_at", "evidence_due_by"):
            if isinstance(values.get(key), str):
                values[key] = datetime.fromisoformat(values[key])
        out.append(cls(**values))
    return tuple(out)


def payment_view(conn: psycopg.Connection, key: str, *, focus: str | None = None) -> PaymentView | None:
    """The payment with this payment or charge id, its refunds, disputes and open requests."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(_VIEW, {"id": key, "kind": "payment"}).fetchone()
    return _view_from_row(row, focus) if row else None


def find_view(conn: psycopg.Connection, stripe_id: str) -> PaymentView | None:
    """The lookup view for any payment, charge, refund or dispute id, from the store only, in one query."""
    kind = kind_of(stripe_id) or "payment"
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(_VIEW, {"id": stripe_id, "kind": kind}).fetchone()
    if row is None:
        return None
    return _view_from_row(row, stripe_id if kind != "payment" else None)
