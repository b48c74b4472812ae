"""Payments, refunds and disputes as last seen from Stripe, and the lookup view over them."""

from __future__ import annotations

from dataclasses import asdict, fields
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from domain.models import Dispute, Payment, PaymentView, Refund, RequestSummary

# Newer observations win; an older snapshot (a late, reordered webhook) changes nothing.
UPSERT_PAYMENT = """
INSERT INTO payments (id, payment_intent_id, charge_id, account, livemode, amount, amount_captured,
    amount_refunded, currency, status, disputed, customer_id, customer_email, card_brand, card_last4,
    description, failure_code, failure_message, stripe_created, observed_at, synced_at)
VALUES (%(id)s, %(payment_intent_id)s, %(charge_id)s, %(account)s, %(livemode)s, %(amount)s,
    %(amount_captured)s, %(amount_refunded)s, %(currency)s, %(status)s, %(disputed)s, %(customer_id)s,
    %(customer_email)s, %(card_brand)s, %(card_last4)s, %(description)s, %(failure_code)s,
    %(failure_message)s, %(stripe_created)s, %(observed_at)s, now())
ON CONFLICT (id) DO UPDATE SET
    charge_id = coalesce(EXCLUDED.charge_id, payments.charge_id),
    account = coalesce(EXCLUDED.account, payments.account),
    livemode = EXCLUDED.livemode,
    amount = EXCLUDED.amount,
    amount_captured = EXCLUDED.amount_captured,
    amount_refunded = EXCLUDED.amount_refunded,
    currency = EXCLUDED.currency,
    status = EXCLUDED.status,
    disputed = EXCLUDED.disputed OR payments.disputed,
    customer_id = coalesce(EXCLUDED.customer_id, payments.customer_id),
    customer_email = coalesce(EXCLUDED.customer_email, payments.customer_email),
    card_brand = coalesce(EXCLUDED.card_brand, payments.card_brand),
    card_last4 = coalesce(EXCLUDED.card_last4, payments.card_last4),
    description = coalesce(EXCLUDED.description, payments.description),
    failure_code = EXCLUDED.failure_code,
    failure_message = EXCLUDED.failure_message,
    observed_at = EXCLUDED.observed_at,
    synced_at = now()
WHERE payments.observed_at <= EXCLUDED.observed_at
RETURNING id
"""

UPSERT_REFUND = """
INSERT INTO refunds (id, charge_id, payment_intent_id, account, amount, currency, status, reason,
    failure_reason, request_id, stripe_created, observed_at, synced_at)
VALUES (%(id)s, %(charge_id)s, %(payment_intent_id)s, %(account)s, %(amount)s, %(currency)s,
    %(status)s, %(reason)s, %(failure_reason)s, %(request_id)s, %(stripe_created)s, %(observed_at)s, now())
ON CONFLICT (id) DO UPDATE SET
    charge_id = coalesce(EXCLUDED.charge_id, refunds.charge_id),
    payment_intent_id = coalesce(EXCLUDED.payment_intent_id, refunds.payment_intent_id),
    account = coalesce(EXCLUDED.account, refunds.account),
    amount = EXCLUDED.amount,
    status = EXCLUDED.status,
    reason = coalesce(EXCLUDED.reason, refunds.reason),
    failure_reason = coalesce(EXCLUDED.failure_reason, refunds.failure_reason),
    request_id = coalesce(refunds.request_id, EXCLUDED.request_id),
    observed_at = EXCLUDED.observed_at,
    synced_at = now()
WHERE refunds.observed_at <= EXCLUDED.observed_at
RETURNING id
"""

UPSERT_DISPUTE = """
INSERT INTO disputes (id, charge_id, payment_intent_id, account, livemode, amount, currency, status,
    reason, evidence_due_by, evidence_submitted, stripe_created, observed_at, synced_at)
VALUES (%(id)s, %(charge_id)s, %(payment_intent_id)s, %(account)s, %(livemode)s, %(amount)s,
    %(currency)s, %(status)s, %(reason)s, %(evidence_due_by)s, %(evidence_submitted)s,
    %(stripe_created)s, %(observed_at)s, now())
ON CONFLICT (id) DO UPDATE SET
    charge_id = coalesce(EXCLUDED.charge_id, disputes.charge_id),
    payment_intent_id = coalesce(EXCLUDED.payment_intent_id, disputes.payment_intent_id),
    account = coalesce(EXCLUDED.account, disputes.account),
    amount = EXCLUDED.amount,
    status = EXCLUDED.status,
    reason = EXCLUDED.reason,
    evidence_due_by = EXCLUDED.evidence_due_by,
    evidence_submitted = EXCLUDED.evidence_submitted,
    observed_at = EXCLUDED.observed_at,
    synced_at = now()
WHERE disputes.observed_at <= EXCLUDED.observed_at
RETURNING id
"""

# Where a refund or dispute id leads: the payment it belongs to.
PAYMENT_KEY_OF_REFUND = "SELECT coalesce(payment_intent_id, charge_id) AS key FROM refunds WHERE id = %(id)s"
PAYMENT_KEY_OF_DISPUTE = "SELECT coalesce(payment_intent_id, charge_id) AS key FROM disputes WHERE id = %(id)s"

# One round trip for everything a lookup shows.
PAYMENT_VIEW = """
WITH p AS (
    SELECT * FROM payments WHERE id = %(key)s
    UNION ALL
    SELECT * FROM payments WHERE charge_id = %(key)s AND id <> %(key)s
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
                'requested_by', q.requested_by, 'stripe_refund_id', q.stripe_refund_id,
                'slack_channel', q.slack_channel, 'slack_ts', q.slack_ts) ORDER BY q.id), '[]')
       FROM refund_requests q
      WHERE q.payment_id = p.id AND q.status IN ('pending', 'approved', 'sent')) AS _requests
FROM p
"""


def _params(record: Any) -> dict[str, Any]:
    return asdict(record)


def upsert_payment(conn: psycopg.Connection, payment: Payment) -> bool:
    """Store a payment snapshot; False when a newer one was already stored."""
    return conn.execute(UPSERT_PAYMENT, _params(payment)).fetchone() is not None


def upsert_refund(conn: psycopg.Connection, refund: Refund) -> bool:
    """Store a refund snapshot; False when a newer one was already stored."""
    return conn.execute(UPSERT_REFUND, _params(refund)).fetchone() is not None


def upsert_dispute(conn: psycopg.Connection, dispute: Dispute) -> bool:
    """Store a dispute snapshot (the Slack owner is kept); False when a newer one was stored."""
    return conn.execute(UPSERT_DISPUTE, _params(dispute)).fetchone() is not None


def payment_key(conn: psycopg.Connection, stripe_id: str) -> str | None:
    """The payment id (pi_ or ch_) that a payment, refund or dispute id belongs to, if stored."""
    prefix = stripe_id.split("_", 1)[0]
    if prefix in {"re", "pyr"}:
        row = conn.execute(PAYMENT_KEY_OF_REFUND, {"id": stripe_id}).fetchone()
    elif prefix in {"dp", "du"}:
        row = conn.execute(PAYMENT_KEY_OF_DISPUTE, {"id": stripe_id}).fetchone()
    else:
        return stripe_id
    return row[0] if row else None


_PAYMENT_FIELDS = [f.name for f in fields(Payment)]


def _from_json(cls: type, items: list[dict[str, Any]]) -> tuple:
    names = {f.name: f.type for f in fields(cls)}
    out = []
    for item in items:
        values = {k: v for k, v in item.items() if k in names}
        for key in ("stripe_created", "observed_at", "synced_at", "evidence_due_by"):
            if isinstance(values.get(key), str):
                values[key] = datetime.fromisoformat(values[key])
        out.append(cls(**values))
    return tuple(out)


def payment_view(conn: psycopg.Connection, key: str, *, focus: str | None = None) -> PaymentView | None:
    """The payment with this id (or charge id), its refunds, disputes and open requests."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(PAYMENT_VIEW, {"key": key}).fetchone()
    if row is None:
        return None
    return PaymentView(
        payment=Payment(**{name: row[name] for name in _PAYMENT_FIELDS}),
        refunds=_from_json(Refund, row["_refunds"]),
        disputes=_from_json(Dispute, row["_disputes"]),
        requests=_from_json(RequestSummary, row["_requests"]),
        focus=focus,
    )


def find_view(conn: psycopg.Connection, stripe_id: str) -> PaymentView | None:
    """The lookup view for any payment, charge, refund or dispute id, from the store only."""
    key = payment_key(conn, stripe_id)
    if key is None:
        return None
    focus = stripe_id if stripe_id != key else None
    return payment_view(conn, key, focus=focus)
