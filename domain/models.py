"""The records we keep, as frozen dataclasses; store/ returns rows as these."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

# Refund statuses that give money back to what is still refundable; every other status, including
# one Stripe adds tomorrow, holds it (pending, requires_action, succeeded): never refund twice.
REFUND_RELEASED = frozenset({"failed", "canceled"})
# Request statuses that have been approved but whose refund is not yet reported by Stripe.
REQUEST_HOLDING = frozenset({"approved", "sent"})


@dataclass(frozen=True, slots=True)
class Payment:
    """A payment intent (or a charge without one) as last seen from Stripe."""

    id: str
    payment_intent_id: str | None
    charge_id: str | None
    account: str | None
    livemode: bool
    amount: int
    amount_captured: int
    amount_refunded: int
    currency: str
    status: str
    charge_status: str | None
    disputed: bool
    customer_id: str | None
    customer_email: str | None
    card_brand: str | None
    card_last4: str | None
    description: str | None
    failure_code: str | None
    failure_message: str | None
    stripe_created: datetime
    observed_at: datetime
    charge_observed_at: datetime | None = None
    synced_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Refund:
    """A Stripe refund, wherever it was made."""

    id: str
    charge_id: str | None
    payment_intent_id: str | None
    account: str | None
    amount: int
    currency: str
    status: str
    reason: str | None
    failure_reason: str | None
    request_id: int | None
    stripe_created: datetime
    observed_at: datetime
    synced_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Dispute:
    """A dispute or inquiry on a payment."""

    id: str
    charge_id: str | None
    payment_intent_id: str | None
    account: str | None
    livemode: bool
    amount: int
    currency: str
    status: str
    reason: str | None
    evidence_due_by: datetime | None
    evidence_submitted: bool
    owner: str | None
    stripe_created: datetime
    observed_at: datetime
    synced_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RequestSummary:
    """The part of a refund request a lookup shows."""

    id: int
    amount: int
    currency: str
    status: str
    requested_by: str
    stripe_refund_id: str | None


@dataclass(frozen=True, slots=True)
class RefundRequest:
    """A refund asked for through the bot, and where it stands."""

    id: int
    payment_id: str
    charge_id: str | None
    account: str | None
    amount: int
    currency: str
    reason: str
    note: str | None
    status: str
    requested_by: str
    requested_via: str
    approvals: list[str]
    approvals_needed: int
    decided_by: str | None
    decided_at: datetime | None
    reject_reason: str | None
    idempotency_key: str
    stripe_refund_id: str | None
    failure_message: str | None
    created_at: datetime
    updated_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class FraudWarning:
    """A Radar early fraud warning: the issuer reports fraud on a charge, before any dispute."""

    id: str
    charge_id: str | None
    payment_intent_id: str | None
    account: str | None
    fraud_type: str
    actionable: bool
    livemode: bool
    stripe_created: datetime

    @property
    def payment_id(self) -> str | None:
        """The id a person looks up: the payment intent's, else the charge's."""
        return self.payment_intent_id or self.charge_id


@dataclass(frozen=True, slots=True)
class Review:
    """A Radar review: a payment held for a person to look at."""

    id: str
    charge_id: str | None
    payment_intent_id: str | None
    reason: str | None
    opened_reason: str | None
    closed_reason: str | None

    @property
    def payment_id(self) -> str | None:
        """The id a person looks up: the payment intent's, else the charge's."""
        return self.payment_intent_id or self.charge_id


@dataclass(frozen=True, slots=True)
class Draft:
    """A refund that would run at once, waiting for its requester to confirm the exact amount."""

    id: UUID
    payment_id: str
    amount: int
    currency: str
    reason: str
    note: str | None
    requested_by: str
    requested_via: str
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class PaymentView:
    """A payment with its refunds, disputes and open requests: what a lookup shows."""

    payment: Payment
    refunds: tuple[Refund, ...] = ()
    disputes: tuple[Dispute, ...] = ()
    requests: tuple[RequestSummary, ...] = ()
    focus: str | None = None  # the id the person asked about, when it is a refund or dispute
    # What Stripe would not let us read, and the permission that lacked: (("disputes", "Disputes: Read"),).
    unreadable: tuple[tuple[str, str], ...] = ()


def refunded(view: PaymentView) -> int:
    """How much of the payment is refunded or being refunded, from everything we know.

    The charge's `amount_refunded` is an aggregate that Stripe does not always re-send when a refund
    later fails; the refunds themselves are precise but may be incomplete (refunds made before we
    were watching). Each term below is the same whatever order the events arrived in.
    """
    p = view.payment
    holding = sum(r.amount for r in view.refunds if r.status not in REFUND_RELEASED)
    given_back = sum(r.amount for r in view.refunds if r.status in REFUND_RELEASED)
    return min(p.amount_captured, max(holding, p.amount_refunded - given_back, 0))


def refundable(view: PaymentView) -> int:
    """What can still be refunded: captured less refunds made or under way and approved requests."""
    p = view.payment
    linked = {r.id for r in view.refunds}
    approved_unsent = sum(
        q.amount
        for q in view.requests
        if q.status in REQUEST_HOLDING and (q.stripe_refund_id is None or q.stripe_refund_id not in linked)
    )
    return max(0, p.amount_captured - refunded(view) - approved_unsent)
