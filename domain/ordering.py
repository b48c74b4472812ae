"""Which Stripe snapshot wins when events arrive late, twice, or out of order.

Stripe's `created` has one-second resolution and events are not ordered, so each merge uses
the time first and, within the same second, how far the object has progressed. Refunds only
move forward (a finished refund changes only as Stripe allows: succeeded may still fail).
"""

from __future__ import annotations

from dataclasses import replace

from domain.models import Dispute, Payment, Refund

# Payment intent lifecycle; succeeded and canceled are final.
PAYMENT_RANK = {
    "requires_payment_method": 0,
    "failed": 0,
    "requires_confirmation": 1,
    "requires_action": 2,
    "processing": 3,
    "pending": 3,
    "requires_capture": 4,
    "succeeded": 6,
    "canceled": 6,
}
PAYMENT_FINAL = frozenset({"succeeded", "canceled"})
CHARGE_RANK = {"failed": 0, "pending": 1, "succeeded": 2}
REFUND_RANK = {"pending": 0, "requires_action": 0, "succeeded": 1, "failed": 2, "canceled": 2}
DISPUTE_RANK = {
    "warning_needs_response": 0,
    "warning_under_review": 1,
    "warning_closed": 2,
    "needs_response": 3,
    "under_review": 4,
    "won": 5,
    "lost": 5,
    "prevented": 5,
}


def _payment_group_wins(old: Payment, new: Payment) -> bool:
    if old.status in PAYMENT_FINAL and new.status not in PAYMENT_FINAL:
        return False
    if new.observed_at != old.observed_at:
        return new.observed_at > old.observed_at
    return PAYMENT_RANK.get(new.status, 0) >= PAYMENT_RANK.get(old.status, 0)


def _charge_progress(p: Payment) -> tuple:
    return (CHARGE_RANK.get(p.charge_status or "", -1), p.amount_captured, p.amount_refunded, p.disputed)


def _charge_group_wins(old: Payment, new: Payment) -> bool:
    if new.charge_observed_at is None:
        return False
    if old.charge_observed_at is None:
        return True
    if new.charge_id != old.charge_id and old.charge_id is not None:
        # Another attempt on the same payment intent: a successful charge outranks failed ones.
        new_rank = CHARGE_RANK.get(new.charge_status or "", -1)
        old_rank = CHARGE_RANK.get(old.charge_status or "", -1)
        if new_rank != old_rank:
            return new_rank > old_rank
    if new.charge_observed_at != old.charge_observed_at:
        return new.charge_observed_at > old.charge_observed_at
    return _charge_progress(new) >= _charge_progress(old)


def merge_payment(old: Payment | None, new: Payment) -> Payment | None:
    """The payment after seeing `new`, or None when nothing changes."""
    if old is None:
        return new
    merged = old
    if _payment_group_wins(old, new):
        merged = replace(
            merged,
            status=new.status,
            amount=new.amount,
            account=new.account or old.account,
            livemode=new.livemode,
            currency=new.currency,
            observed_at=new.observed_at,
            description=new.description or old.description,
            customer_id=new.customer_id or old.customer_id,
            failure_code=new.failure_code,
            failure_message=new.failure_message,
        )
    if _charge_group_wins(old, new):
        merged = replace(
            merged,
            charge_id=new.charge_id or old.charge_id,
            charge_status=new.charge_status,
            amount_refunded=new.amount_refunded,
            disputed=new.disputed or old.disputed,
            card_brand=new.card_brand or old.card_brand,
            card_last4=new.card_last4 or old.card_last4,
            customer_email=new.customer_email or old.customer_email,
            charge_observed_at=new.charge_observed_at,
        )
    # Captured money only ever grows; keep the larger figure whichever snapshot carried it.
    captured = max(old.amount_captured, new.amount_captured)
    merged = replace(
        merged,
        amount_captured=captured,
        amount=max(merged.amount, captured),
        amount_refunded=min(merged.amount_refunded, captured),
    )
    return None if merged == old else merged


def merge_refund(old: Refund | None, new: Refund) -> Refund | None:
    """The refund after seeing `new` (status only moves forward), or None when nothing changes."""
    if old is None:
        return new
    old_rank, new_rank = REFUND_RANK.get(old.status, 0), REFUND_RANK.get(new.status, 0)
    if new_rank < old_rank:
        return None
    if new_rank == old_rank and new.observed_at < old.observed_at:
        return None
    merged = replace(
        new,
        charge_id=new.charge_id or old.charge_id,
        payment_intent_id=new.payment_intent_id or old.payment_intent_id,
        account=new.account or old.account,
        reason=new.reason or old.reason,
        failure_reason=new.failure_reason or old.failure_reason,
        request_id=old.request_id or new.request_id,
        observed_at=max(new.observed_at, old.observed_at),
        synced_at=old.synced_at,
    )
    return None if merged == old else merged


def merge_dispute(old: Dispute | None, new: Dispute) -> Dispute | None:
    """The dispute after seeing `new` (the Slack owner is ours and kept), or None when nothing changes."""
    if old is None:
        return new
    if new.observed_at < old.observed_at:
        return None
    if new.observed_at == old.observed_at and DISPUTE_RANK.get(new.status, 0) < DISPUTE_RANK.get(old.status, 0):
        return None
    merged = replace(
        new,
        owner=old.owner,
        charge_id=new.charge_id or old.charge_id,
        payment_intent_id=new.payment_intent_id or old.payment_intent_id,
        account=new.account or old.account,
        evidence_submitted=new.evidence_submitted or old.evidence_submitted,
        synced_at=old.synced_at,
    )
    return None if merged == old else merged
