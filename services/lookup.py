"""Looking up a payment, refund or dispute: the store first, then Stripe (and cache what it says)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from psycopg_pool import ConnectionPool

from domain import stripe_mapping as sm
from domain.errors import DatabaseUnavailable, NotFound
from domain.ids import kind_of
from domain.models import PaymentView
from services.stripe_gateway import StripeGateway
from store import payments as store
from store.db import connection, transaction

log = logging.getLogger(__name__)


def from_store(pool: ConnectionPool, stripe_id: str) -> PaymentView | None:
    """The stored view, or None when we have never seen this id (one query, no transaction)."""
    with connection(pool) as conn:
        return store.find_view(conn, stripe_id)


def _payment_json(gateway: StripeGateway, payment_id: str) -> dict[str, Any]:
    """The payment intent JSON for a payment id, or the charge's when it has no payment intent."""
    if payment_id.startswith("pi_"):
        return gateway.payment_intent(payment_id)
    charge = gateway.charge(payment_id)
    pi_id = sm.ref_id(charge.get("payment_intent"))
    return gateway.payment_intent(pi_id) if pi_id else charge


def from_stripe(pool: ConnectionPool, gateway: StripeGateway, stripe_id: str, *, now: datetime) -> PaymentView:
    """Fetch the object and its payment from Stripe, store them, and return the view.

    Raises NotFound, StripeUnavailable, StripeRejectedKey or StripeRateLimited.
    """
    kind = kind_of(stripe_id)
    if kind in {"refund", "dispute"}:
        child = gateway.refund(stripe_id) if kind == "refund" else gateway.dispute(stripe_id)
        parent = sm.ref_id(child.get("payment_intent")) or sm.ref_id(child.get("charge"))
    else:
        parent = stripe_id
    if not parent:
        raise NotFound(f"{stripe_id} is not linked to a payment.")
    payment_json = _payment_json(gateway, parent)
    if payment_json.get("object") == "payment_intent":
        payment = sm.payment_from_payment_intent(payment_json, account=None, observed_at=now)
    else:
        payment = sm.payment_from_charge(payment_json, account=None, observed_at=now)
    refunds = [
        sm.refund_from_stripe(r, account=None, observed_at=now)
        for r in gateway.refunds_for(payment_intent=payment.payment_intent_id, charge=payment.charge_id)
    ]
    disputes = [
        sm.dispute_from_stripe(d, account=None, observed_at=now)
        for d in gateway.disputes_for(payment_intent=payment.payment_intent_id, charge=payment.charge_id)
    ]
    focus = stripe_id if stripe_id != payment.id else None
    try:
        with transaction(pool) as conn:
            store.save_payment(conn, payment)
            for refund in refunds:
                store.save_refund(conn, refund)
            for dispute in disputes:
                store.save_dispute(conn, dispute)
            view = store.payment_view(conn, payment.id, focus=focus)
    except DatabaseUnavailable:
        # The person still gets Stripe's answer; the cache fills on the next lookup or webhook.
        log.warning("database unavailable; %s answered from Stripe without caching", stripe_id)
        view = None
    return view or PaymentView(
        payment, tuple(sorted(refunds, key=lambda r: r.stripe_created)), tuple(disputes), focus=focus
    )
