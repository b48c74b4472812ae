"""Stripe JSON (webhook payloads and API reads) to our records.

Reads only fields that are stable across API versions 2020-08-27 to today, and falls back where a
field moved: charges embedded in payment intents (`charges.data`, before 2022-11-15) or
`latest_charge` (after); `amount_captured` missing on old charges.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from domain.models import Dispute, FraudWarning, Payment, Refund, Review

Json = Mapping[str, Any]


def ts(value: int | None) -> datetime | None:
    """A Stripe unix timestamp as an aware UTC datetime."""
    return datetime.fromtimestamp(value, UTC) if value else None


def ref_id(value: Any) -> str | None:
    """The id of a field that may be an id or an expanded object."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return value.get("id")


def _obj(value: Any) -> Json | None:
    return value if isinstance(value, Mapping) else None


def latest_charge(pi: Json) -> Json | None:
    """The payment intent's latest charge object when it is included or expanded."""
    charge = _obj(pi.get("latest_charge"))
    if charge:
        return charge
    charges = _obj(pi.get("charges"))
    data = charges.get("data") if charges else None
    if data:
        return max(data, key=lambda c: c.get("created") or 0)
    return None


def _email(charge: Json | None, *others: Json | None) -> str | None:
    if charge:
        billing = _obj(charge.get("billing_details")) or {}
        if billing.get("email"):
            return billing["email"]
        if charge.get("receipt_email"):
            return charge["receipt_email"]
    for other in others:
        if not other:
            continue
        if other.get("receipt_email"):
            return other["receipt_email"]
        customer = _obj(other.get("customer"))
        if customer and customer.get("email"):
            return customer["email"]
    return None


def _card(charge: Json | None) -> tuple[str | None, str | None]:
    if not charge:
        return None, None
    details = _obj(charge.get("payment_method_details")) or {}
    card = _obj(details.get("card")) or _obj(details.get("card_present")) or {}
    if not card:
        source = _obj(charge.get("source")) or {}
        card = source if source.get("object") == "card" else {}
    last4 = card.get("last4")
    return card.get("brand"), last4 if isinstance(last4, str) and len(last4) == 4 else None


def _captured(charge: Json) -> int:
    if charge.get("amount_captured") is not None:
        return int(charge["amount_captured"])
    # Before amount_captured existed, a captured charge was captured in full.
    return int(charge.get("amount") or 0) if charge.get("captured") else 0


def payment_from_charge(charge: Json, *, account: str | None, observed_at: datetime) -> Payment:
    """A payment record from a charge (keyed by its payment intent when it has one)."""
    pi_id = ref_id(charge.get("payment_intent"))
    captured = _captured(charge)
    brand, last4 = _card(charge)
    failed = charge.get("status") == "failed"
    return Payment(
        id=pi_id or charge["id"],
        payment_intent_id=pi_id,
        charge_id=charge["id"],
        account=account,
        livemode=bool(charge.get("livemode")),
        amount=int(charge.get("amount") or 0),
        amount_captured=captured,
        amount_refunded=min(int(charge.get("amount_refunded") or 0), captured),
        currency=str(charge.get("currency") or "usd").lower(),
        status=_payment_status_of_charge(charge) if pi_id else _charge_status(charge),
        charge_status=_charge_status(charge),
        disputed=bool(charge.get("disputed")),
        customer_id=ref_id(charge.get("customer")),
        customer_email=_email(charge),
        card_brand=brand,
        card_last4=last4,
        description=charge.get("description"),
        failure_code=decline_code(charge),
        failure_message=charge.get("failure_message") if failed else None,
        stripe_created=ts(charge.get("created")) or observed_at,
        observed_at=observed_at,
        charge_observed_at=observed_at,
    )


def _payment_status_of_charge(charge: Json) -> str:
    """What a charge tells about its payment intent's status."""
    status = _charge_status(charge)
    if status == "succeeded":
        return "succeeded" if charge.get("captured", True) else "requires_capture"
    return "processing" if status == "pending" else "requires_payment_method"


def _charge_status(charge: Json) -> str:
    status = charge.get("status") or ("succeeded" if charge.get("paid") else "failed")
    # A status Stripe adds later is kept as it is, not mistaken for one we know.
    return status if isinstance(status, str) else "pending"


def decline_code(charge: Json | None) -> str | None:
    """Why a charge failed, most specific first: the issuer's reason, then Stripe's code, then the network's."""
    if not charge or charge.get("status") != "failed":
        return None
    outcome = _obj(charge.get("outcome")) or {}
    return outcome.get("reason") or charge.get("failure_code") or outcome.get("network_status")


def decline_code_of_error(error: Json | None) -> str | None:
    """Why a payment intent's last attempt failed, most specific first (the issuer's code, then Stripe's)."""
    error = error or {}
    return error.get("decline_code") or error.get("code")


def payment_from_payment_intent(
    pi: Json, *, account: str | None, observed_at: datetime, charge: Json | None = None
) -> Payment:
    """A payment record from a payment intent and, when known, its latest charge."""
    charge = charge or latest_charge(pi)
    error = _obj(pi.get("last_payment_error")) or {}
    amount = int(pi.get("amount") or 0)
    if charge:
        captured = _captured(charge)
        refunded = min(int(charge.get("amount_refunded") or 0), captured)
    else:
        captured = int(pi.get("amount_received") or 0) if pi.get("status") == "succeeded" else 0
        refunded = 0
    brand, last4 = _card(charge)
    return Payment(
        id=pi["id"],
        payment_intent_id=pi["id"],
        charge_id=charge["id"] if charge else ref_id(pi.get("latest_charge")),
        account=account,
        livemode=bool(pi.get("livemode")),
        amount=max(amount, captured),
        amount_captured=captured,
        amount_refunded=refunded,
        currency=str(pi.get("currency") or "usd").lower(),
        status=pi.get("status") or "processing",
        charge_status=_charge_status(charge) if charge else None,
        disputed=bool(charge and charge.get("disputed")),
        customer_id=ref_id(pi.get("customer")),
        customer_email=_email(charge, pi),
        card_brand=brand,
        card_last4=last4,
        description=pi.get("description"),
        failure_code=decline_code_of_error(error),
        failure_message=error.get("message"),
        stripe_created=ts(pi.get("created")) or observed_at,
        observed_at=observed_at,
        charge_observed_at=observed_at if charge else None,
    )


def refund_request_key(obj: Json) -> str | None:
    """The idempotency key of the refund desk request that made this refund, from its metadata."""
    value = (_obj(obj.get("metadata")) or {}).get("refund_desk_request")
    return value if isinstance(value, str) and value else None


def refund_from_stripe(obj: Json, *, account: str | None, observed_at: datetime) -> Refund:
    """A refund record from a Stripe refund object (linked to a request only by the caller, who checks it)."""
    return Refund(
        id=obj["id"],
        charge_id=ref_id(obj.get("charge")),
        payment_intent_id=ref_id(obj.get("payment_intent")),
        account=account,
        amount=int(obj.get("amount") or 0),
        currency=str(obj.get("currency") or "usd").lower(),
        status=obj.get("status") or "pending",
        reason=obj.get("reason"),
        failure_reason=obj.get("failure_reason"),
        request_id=None,
        stripe_created=ts(obj.get("created")) or observed_at,
        observed_at=observed_at,
    )


def dispute_from_stripe(obj: Json, *, account: str | None, observed_at: datetime) -> Dispute:
    """A dispute record from a Stripe dispute object (dp_ or du_)."""
    evidence = _obj(obj.get("evidence_details")) or {}
    submitted = bool(evidence.get("submission_count")) or evidence.get("has_evidence") is True
    return Dispute(
        id=obj["id"],
        charge_id=ref_id(obj.get("charge")),
        payment_intent_id=ref_id(obj.get("payment_intent")),
        account=account,
        livemode=bool(obj.get("livemode")),
        amount=int(obj.get("amount") or 0),
        currency=str(obj.get("currency") or "usd").lower(),
        status=obj.get("status") or "needs_response",
        reason=obj.get("reason"),
        evidence_due_by=ts(evidence.get("due_by")),
        evidence_submitted=submitted,
        owner=None,
        stripe_created=ts(obj.get("created")) or observed_at,
        observed_at=observed_at,
    )


def fraud_warning_from_stripe(efw: Json, *, account: str | None, observed_at: datetime) -> FraudWarning:
    """An early fraud warning record from a radar.early_fraud_warning object."""
    return FraudWarning(
        id=efw["id"],
        charge_id=ref_id(efw.get("charge")),
        payment_intent_id=ref_id(efw.get("payment_intent")),
        account=account,
        fraud_type=str(efw.get("fraud_type") or "misc"),
        actionable=bool(efw.get("actionable")),
        livemode=bool(efw.get("livemode")),
        stripe_created=ts(efw.get("created")) or observed_at,
    )


def review_from_stripe(review: Json) -> Review:
    """A Radar review record from a review object."""

    def text(key: str) -> str | None:
        value = review.get(key)
        return value if isinstance(value, str) else None

    return Review(
        id=review["id"],
        charge_id=ref_id(review.get("charge")),
        payment_intent_id=ref_id(review.get("payment_intent")),
        reason=text("reason"),
        opened_reason=text("opened_reason"),
        closed_reason=text("closed_reason"),
    )
