"""The store's rows as the API's JSON: the same records Slack renders, in the shapes openapi.json describes.

Times stay datetimes: orjson writes them as RFC 3339 in C, a third of a list's cost when done here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from domain.history import Page, RequestDetail, Step, encode_cursor
from domain.models import Dispute, PaymentView, Refund, RefundRequest, refundable, refunded
from domain.money import exponent


def money(amount: int, currency: str) -> dict[str, Any]:
    """An amount: in major units as a string (as POST takes it), in minor units as Stripe has it, and its currency."""
    places = exponent(currency)
    if places:
        whole, part = divmod(amount, 10**places)
        value = f"{whole}.{part:0{places}d}"
    else:
        value = str(amount)
    return {"value": value, "minor": amount, "currency": currency}


def _time(when: datetime | None) -> datetime | None:
    return when


def refund_request(r: RefundRequest) -> dict[str, Any]:
    """A refund request."""
    return {
        "number": r.id,
        "payment": r.payment_id,
        "charge": r.charge_id,
        "account": r.account,
        "amount": money(r.amount, r.currency),
        "reason": r.reason,
        "note": r.note,
        "status": r.status,
        "requested_by": r.requested_by,
        "requested_via": r.requested_via,
        "approvals": list(r.approvals),
        "approvals_needed": r.approvals_needed,
        "decided_by": r.decided_by,
        "decided_at": _time(r.decided_at),
        "reject_reason": r.reject_reason,
        "stripe_refund": r.stripe_refund_id,
        "failure_message": r.failure_message,
        "created_at": _time(r.created_at),
        "updated_at": _time(r.updated_at),
        "expires_at": _time(r.expires_at),
    }


def step(s: Step) -> dict[str, Any]:
    """One step of a request's timeline."""
    return {"at": _time(s.at), "step": s.step, "actor": s.actor, "note": s.note}


def refund(r: Refund) -> dict[str, Any]:
    """A Stripe refund as we last saw it."""
    return {
        "id": r.id,
        "payment_intent": r.payment_intent_id,
        "charge": r.charge_id,
        "account": r.account,
        "amount": money(r.amount, r.currency),
        "status": r.status,
        "reason": r.reason,
        "failure_reason": r.failure_reason,
        "request": r.request_id,
        "created_at": _time(r.stripe_created),
    }


def dispute(d: Dispute) -> dict[str, Any]:
    """A dispute as we last saw it."""
    return {
        "id": d.id,
        "payment_intent": d.payment_intent_id,
        "charge": d.charge_id,
        "account": d.account,
        "livemode": d.livemode,
        "amount": money(d.amount, d.currency),
        "status": d.status,
        "reason": d.reason,
        "evidence_due_by": _time(d.evidence_due_by),
        "evidence_submitted": d.evidence_submitted,
        "owner": d.owner,
        "created_at": _time(d.stripe_created),
    }


def request_detail(detail: RequestDetail) -> dict[str, Any]:
    """A request with its timeline and refund."""
    return {
        **refund_request(detail.request),
        "timeline": [step(s) for s in detail.steps],
        "refund": refund(detail.refund) if detail.refund else None,
    }


def payment(view: PaymentView) -> dict[str, Any]:
    """What a lookup shows: the payment, its refunds, disputes and open requests."""
    p = view.payment
    return {
        "id": p.id,
        "payment_intent": p.payment_intent_id,
        "charge": p.charge_id,
        "account": p.account,
        "livemode": p.livemode,
        "status": p.status,
        "amount": money(p.amount, p.currency),
        "captured": money(p.amount_captured, p.currency),
        "refunded": money(refunded(view), p.currency),
        "refundable": money(refundable(view), p.currency),
        "customer": {"id": p.customer_id, "email": p.customer_email},
        "card": {"brand": p.card_brand, "last4": p.card_last4} if p.card_last4 else None,
        "description": p.description,
        "failure": {"code": p.failure_code, "message": p.failure_message}
        if (p.failure_code or p.failure_message)
        else None,
        "created_at": _time(p.stripe_created),
        "refunds": [refund(r) for r in view.refunds],
        "disputes": [dispute(d) for d in view.disputes],
        "open_requests": [
            {
                "number": q.id,
                "amount": money(q.amount, q.currency),
                "status": q.status,
                "requested_by": q.requested_by,
                "stripe_refund": q.stripe_refund_id,
            }
            for q in view.requests
        ],
    }


def page(p: Page, render: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    """A page of a list, with the cursor of the next one."""
    return {
        "data": [render(row) for row in p.rows],
        "has_more": p.next is not None,
        "next_cursor": encode_cursor(p.next) if p.next else None,
    }
