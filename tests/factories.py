"""Domain objects for tests, with plain defaults: say only what a test is about."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from domain.models import Dispute, Payment, PaymentView, Refund, RequestSummary

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def payment(**kw: Any) -> Payment:
    """A succeeded, fully captured $10.00 card payment with its charge, nothing refunded."""
    base: dict[str, Any] = dict(
        id="pi_1",
        payment_intent_id="pi_1",
        charge_id="ch_1",
        account=None,
        livemode=False,
        amount=1000,
        amount_captured=1000,
        amount_refunded=0,
        currency="usd",
        status="succeeded",
        charge_status="succeeded",
        disputed=False,
        customer_id=None,
        customer_email=None,
        card_brand=None,
        card_last4=None,
        description=None,
        failure_code=None,
        failure_message=None,
        stripe_created=T0,
        observed_at=T0,
    )
    return Payment(**{**base, **kw})


def refund(**kw: Any) -> Refund:
    """A pending $5.00 refund of pi_1, asked for by the customer."""
    base: dict[str, Any] = dict(
        id="re_1",
        charge_id="ch_1",
        payment_intent_id="pi_1",
        account=None,
        amount=500,
        currency="usd",
        status="pending",
        reason="requested_by_customer",
        failure_reason=None,
        request_id=None,
        stripe_created=T0,
        observed_at=T0,
    )
    return Refund(**{**base, **kw})


def dispute(**kw: Any) -> Dispute:
    """A $10.00 fraud dispute on pi_1 that needs a response, with no owner."""
    base: dict[str, Any] = dict(
        id="dp_1",
        charge_id="ch_1",
        payment_intent_id="pi_1",
        account=None,
        livemode=False,
        amount=1000,
        currency="usd",
        status="needs_response",
        reason="fraudulent",
        evidence_due_by=None,
        evidence_submitted=False,
        owner=None,
        stripe_created=T0,
        observed_at=T0,
    )
    return Dispute(**{**base, **kw})


def request_summary(**kw: Any) -> RequestSummary:
    """Request #1 for $4.00, waiting for approval."""
    base: dict[str, Any] = dict(
        id=1, amount=400, currency="usd", status="pending", requested_by="U0SUPPORT1", stripe_refund_id=None
    )
    return RequestSummary(**{**base, **kw})


def view(
    *,
    refunds: tuple | list = (),
    disputes: tuple | list = (),
    requests: tuple | list = (),
    focus: str | None = None,
    **payment_fields: Any,
) -> PaymentView:
    """A lookup view: a payment (fields as in payment()) with its refunds, disputes and open requests."""
    return PaymentView(payment(**payment_fields), tuple(refunds), tuple(disputes), tuple(requests), focus=focus)
