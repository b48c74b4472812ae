from __future__ import annotations

import pytest

from domain.priority import ROUTINE, URGENT, batch_split, event_priority
from handlers.registry import KNOWN_TYPES


@pytest.mark.parametrize(
    ("event_type", "priority"),
    [
        ("charge.dispute.created", URGENT),
        ("charge.dispute.updated", URGENT),
        ("charge.dispute.closed", URGENT),
        ("charge.dispute.funds_withdrawn", URGENT),
        ("charge.dispute.funds_reinstated", URGENT),
        ("radar.early_fraud_warning.created", URGENT),
        ("radar.early_fraud_warning.updated", URGENT),
        ("refund.created", URGENT),
        ("refund.updated", URGENT),
        ("refund.failed", URGENT),
        ("charge.refund.updated", URGENT),
        ("charge.refunded", URGENT),  # old API versions carry the refunds, which complete requests
        ("review.opened", URGENT),
        ("review.closed", URGENT),
        ("charge.succeeded", ROUTINE),
        ("charge.failed", ROUTINE),
        ("charge.captured", ROUTINE),
        ("charge.updated", ROUTINE),
        ("payment_intent.succeeded", ROUTINE),
        ("payment_intent.payment_failed", ROUTINE),
        ("payment_intent.canceled", ROUTINE),
        ("payout.paid", ROUTINE),  # money paid out: reconciled later by the worker, nobody waits on it
        ("payout.failed", URGENT),  # on-call is alerted
        ("account.updated", URGENT),  # a connected account disabled alerts on-call (issue #13)
        ("capability.updated", URGENT),
        ("refunds.anything", ROUTINE),  # a prefix is a whole segment, not a string prefix
        ("charge.disputed", ROUTINE),
    ],
)
def test_event_priority(event_type: str, priority: int) -> None:
    assert event_priority(event_type) == priority


def test_every_handled_type_has_a_priority_and_payments_are_the_routine_ones() -> None:
    routine = {t for t in KNOWN_TYPES if event_priority(t) == ROUTINE}
    assert all(t.startswith(("charge.", "payment_intent.")) for t in routine - {"payout.paid"})
    assert "charge.refunded" not in routine and not any("dispute" in t for t in routine)


@pytest.mark.parametrize(
    ("size", "split"),
    [(1, (1, 0)), (3, (3, 0)), (4, (3, 1)), (100, (75, 25)), (101, (76, 25)), (1000, (750, 250))],
)
def test_batch_split_keeps_a_quarter_for_routine_events(size: int, split: tuple[int, int]) -> None:
    assert batch_split(size) == split


def test_a_batch_is_never_empty() -> None:
    with pytest.raises(ValueError):
        batch_split(0)
