from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import timedelta

import factories
import pytest

from domain.models import Payment, Refund
from domain.ordering import merge_payment, merge_refund

T0 = factories.T0


def refund(status: str, at: int, **kw) -> Refund:
    return factories.refund(status=status, observed_at=T0 + timedelta(seconds=at), **kw)


def payment(
    status: str,
    at: int,
    *,
    charge_at: int | None = None,
    refunded: int = 0,
    captured: int = 1000,
    charge_status: str | None = "succeeded",
    charge_id: str = "ch_1",
) -> Payment:
    return factories.payment(
        status=status,
        charge_id=charge_id,
        amount_captured=captured,
        amount_refunded=refunded,
        charge_status=charge_status,
        observed_at=T0 + timedelta(seconds=at),
        charge_observed_at=None if charge_at is None else T0 + timedelta(seconds=charge_at),
    )


def fold(merge, snapshots):
    state = None
    for snap in snapshots:
        merged = merge(state, snap)
        if merged is not None:
            state = merged
    return state


@pytest.mark.parametrize(
    ("old", "new", "wins"),
    [
        (refund("pending", 0), refund("succeeded", 5), True),
        (refund("succeeded", 5), refund("pending", 0), False),  # late pending never undoes success
        (refund("succeeded", 5), refund("pending", 9), False),  # even when stamped later
        (refund("succeeded", 5), refund("failed", 9, failure_reason="expired_or_canceled_card"), True),
        (refund("failed", 9), refund("succeeded", 12), False),  # failed is final
        (refund("canceled", 3), refund("succeeded", 4), False),
        (refund("pending", 0), refund("requires_action", 2), True),
        (refund("requires_action", 2), refund("pending", 1), False),
        (refund("pending", 3), refund("pending", 3), False),  # a duplicate changes nothing
    ],
)
def test_refund_status_only_moves_forward(old: Refund, new: Refund, wins: bool) -> None:
    merged = merge_refund(old, new)
    assert (merged is not None and merged.status == new.status) == wins


def test_refund_any_delivery_order_ends_in_the_true_state() -> None:
    true_order = [refund("pending", 0), refund("succeeded", 4), refund("failed", 9, failure_reason="lost")]
    expected = fold(merge_refund, true_order)
    for order in itertools.permutations(true_order + true_order[:1]):
        assert fold(merge_refund, order) == expected


def test_refund_request_link_is_kept() -> None:
    linked = refund("pending", 0, request_id=7)
    assert merge_refund(linked, refund("succeeded", 3)).request_id == 7


@pytest.mark.parametrize(
    ("old", "new", "status"),
    [
        (payment("requires_payment_method", 0), payment("succeeded", 5), "succeeded"),
        (payment("succeeded", 5), payment("requires_payment_method", 0), "succeeded"),
        (payment("succeeded", 5), payment("requires_payment_method", 9), "succeeded"),  # final stays final
        (payment("processing", 1), payment("requires_payment_method", 2), "requires_payment_method"),
        (payment("requires_payment_method", 2), payment("processing", 1), "requires_payment_method"),
        (payment("processing", 3), payment("succeeded", 3), "succeeded"),  # same second: progress wins
        (payment("succeeded", 3), payment("processing", 3), "succeeded"),
    ],
)
def test_payment_status_ordering(old: Payment, new: Payment, status: str) -> None:
    merged = merge_payment(old, new) or old
    assert merged.status == status


def test_charge_snapshots_order_by_time_then_progress() -> None:
    base = payment("succeeded", 0, charge_at=0)
    refunded_once = payment("succeeded", 0, charge_at=5, refunded=200)
    refunded_twice = payment("succeeded", 0, charge_at=5, refunded=500)
    after_failure = payment("succeeded", 0, charge_at=20, refunded=300)
    true_order = [base, refunded_once, refunded_twice, after_failure]
    expected = fold(merge_payment, true_order)
    assert expected.amount_refunded == 300
    for order in itertools.permutations(true_order):
        assert fold(merge_payment, order).amount_refunded == 300


def test_a_succeeded_charge_outranks_an_earlier_failed_attempt() -> None:
    failed = payment("requires_payment_method", 0, charge_at=10, captured=0, charge_status="failed", charge_id="ch_a")
    ok = payment("succeeded", 5, charge_at=5, charge_status="succeeded", charge_id="ch_b")
    for order in ([failed, ok], [ok, failed]):
        final = fold(merge_payment, order)
        assert (final.charge_id, final.amount_captured) == ("ch_b", 1000)


def test_captured_never_shrinks_and_refunded_never_exceeds_it() -> None:
    full = payment("succeeded", 0, charge_at=3, refunded=1000)
    pi_only = replace(payment("succeeded", 9, captured=0, charge_status=None), charge_observed_at=None)
    merged = merge_payment(full, pi_only) or full
    assert (merged.amount_captured, merged.amount_refunded) == (1000, 1000)


def test_duplicates_change_nothing() -> None:
    p = payment("succeeded", 1, charge_at=1, refunded=100)
    assert merge_payment(p, p) is None
    r = refund("succeeded", 1)
    assert merge_refund(r, r) is None


def test_refunded_counts_a_later_failure_the_charge_snapshot_never_repeated() -> None:
    from domain.models import PaymentView, refunded

    snapshot = payment("succeeded", 0, charge_at=1, refunded=500)  # two pending refunds, 300 and 200
    r1 = refund("pending", 1, id="re_a", amount=300)
    r2 = refund("failed", 2, id="re_b", amount=200, failure_reason="expired_or_canceled_card")
    assert refunded(PaymentView(snapshot, refunds=(r1, r2))) == 300
    # Refunds made before we were watching still count through the charge's aggregate.
    assert refunded(PaymentView(snapshot, refunds=(refund("pending", 1, id="re_c", amount=100),))) == 500
    assert refunded(PaymentView(snapshot)) == 500
