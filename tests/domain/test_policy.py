from __future__ import annotations

from datetime import UTC, datetime

import factories
import pytest

from domain.models import Dispute, PaymentView
from domain.money import parse_money
from domain.policy import (
    RoleConfig,
    Roles,
    approvals_needed,
    is_approver,
    is_oncall,
    is_requester,
    refusal_to_decide,
    refusal_to_refund,
    roles_of,
)

T = datetime(2026, 11, 1, tzinfo=UTC)
MEMBERS = {"S0APPROVERS": frozenset({"U0MGR1", "U0MGR2"}), "S0SUPPORT": frozenset({"U0AGENT"})}
CONFIG = RoleConfig(
    requesters=frozenset({"S0SUPPORT", "U0SOLO"}), approvers=frozenset({"S0APPROVERS"}), admins=frozenset({"U0ADMIN"})
)


@pytest.mark.parametrize(
    ("user", "requester", "approver"),
    [
        ("U0AGENT", True, False),  # through a user group
        ("U0SOLO", True, False),  # named directly
        ("U0MGR1", False, True),
        ("U0ADMIN", True, True),
        ("U0NOBODY", False, False),
    ],
)
def test_roles(user: str, requester: bool, approver: bool) -> None:
    assert roles_of(user, CONFIG, MEMBERS) == Roles(requester, approver)


def test_unset_requesters_means_everyone_and_unset_approvers_means_nobody_but_admins() -> None:
    open_config = RoleConfig(requesters=None, approvers=None, admins=frozenset())
    assert roles_of("U0ANYONE", open_config, {}) == Roles(True, False)
    assert CONFIG.groups() == {"S0APPROVERS", "S0SUPPORT"}


@pytest.mark.parametrize("principal", ["S0APPROVERS", "S0SUPPORT", "C0CHANNEL", "", "u0mgr1", "U0MGR1 "])
def test_a_group_or_anything_but_a_user_id_is_never_a_user(principal: str) -> None:
    config = RoleConfig(
        requesters=frozenset({"S0SUPPORT", principal}),
        approvers=frozenset({"S0APPROVERS", principal}),
        admins=frozenset({principal}),
    )
    assert roles_of(principal, config, MEMBERS) == Roles(False, False)
    assert not is_approver(principal, RoleConfig(None, frozenset({principal}), frozenset()), {})


def _unreachable(group: str) -> frozenset[str]:
    raise LookupError(f"{group} should not have been looked up")


def test_a_user_named_directly_needs_no_group_lookup() -> None:
    assert is_requester("U0SOLO", CONFIG, _unreachable)
    assert is_approver("U0ADMIN", CONFIG, _unreachable)
    with pytest.raises(LookupError):
        is_approver("U0MGR1", CONFIG, _unreachable)


def test_only_the_groups_of_the_role_checked_are_looked_up() -> None:
    looked_up: list[str] = []

    def members(group: str) -> frozenset[str]:
        looked_up.append(group)
        return MEMBERS.get(group, frozenset())

    assert is_requester("U0AGENT", CONFIG, members)
    assert looked_up == ["S0SUPPORT"]


def test_oncall_is_approvers_admins_and_the_oncall_group() -> None:
    config = RoleConfig(
        requesters=None,
        approvers=frozenset({"S0APPROVERS"}),
        admins=frozenset({"U0ADMIN"}),
        oncall=frozenset({"S0ONCALL"}),
    )
    members = {**MEMBERS, "S0ONCALL": frozenset({"U0ENGINEER"})}
    assert [is_oncall(u, config, members) for u in ("U0MGR1", "U0ADMIN", "U0ENGINEER", "U0AGENT", "S0ONCALL")] == [
        True,
        True,
        True,
        False,
        False,
    ]


THRESHOLDS = {m.currency: m.amount for m in map(parse_money, ["5000 USD", "750000 JPY", "1500 KWD"])}
SECOND = {"usd": parse_money("20000 USD").amount}
APPROVER, REQUESTER = Roles(True, True), Roles(True, False)


@pytest.mark.parametrize(
    ("roles", "amount", "currency", "needed"),
    [
        (REQUESTER, 1, "usd", 1),  # a requester always needs an approver
        (APPROVER, 500000, "usd", 0),  # at the threshold: runs at once
        (APPROVER, 500001, "usd", 1),  # one cent above: another approver
        (APPROVER, 750000, "jpy", 0),
        (APPROVER, 750001, "jpy", 1),
        (APPROVER, 1500000, "kwd", 0),  # 1,500.000 KWD
        (APPROVER, 1500010, "kwd", 1),
        (APPROVER, 100, "eur", 1),  # no threshold set for EUR: always approved by someone else
        (APPROVER, 2000000, "usd", 1),
        (APPROVER, 2000001, "usd", 2),  # above the second threshold: two different approvers
        (REQUESTER, 2000001, "usd", 2),
    ],
)
def test_approvals_needed_at_the_boundaries(roles: Roles, amount: int, currency: str, needed: int) -> None:
    assert approvals_needed(roles, amount, currency, THRESHOLDS, SECOND) == needed


def _view(status="succeeded", captured=1000, refunded=0, refunds=(), disputes=(), requests=()) -> PaymentView:
    return factories.view(
        status=status,
        amount_captured=captured,
        amount_refunded=refunded,
        refunds=refunds,
        disputes=disputes,
        requests=requests,
    )


def _dispute(status: str) -> Dispute:
    return factories.dispute(status=status)


@pytest.mark.parametrize(
    ("view", "amount", "says"),
    [
        (_view(), 1000, None),
        (_view(), 1001, "more than the $10.00 still refundable"),
        (_view(status="requires_capture", captured=0), None, "not captured"),
        (_view(status="requires_payment_method", captured=0), None, "has not succeeded"),
        (_view(refunded=1000), None, "fully refunded"),
        (
            _view(refunds=[factories.refund(amount=600)]),
            401,
            "$4.00 still refundable",
        ),
        (_view(requests=[factories.request_summary(amount=700, status="approved")]), 301, "$3.00"),
        (_view(disputes=[_dispute("needs_response")]), 100, "open dispute"),
        (_view(disputes=[_dispute("warning_needs_response")]), 100, "open dispute"),
        (_view(disputes=[_dispute("lost")]), 100, None),
    ],
)
def test_refusal_to_refund(view: PaymentView, amount: int | None, says: str | None) -> None:
    reason = refusal_to_refund(view, amount)
    assert (reason is None) if says is None else (says in reason)


@pytest.mark.parametrize(
    ("user", "roles", "status", "approvals", "says"),
    [
        ("U0MGR1", APPROVER, "pending", (), None),
        ("U0AGENT", APPROVER, "pending", (), "someone else"),  # own request
        ("U0MGR1", REQUESTER, "pending", (), "Only approvers"),
        ("U0MGR1", APPROVER, "succeeded", (), "already succeeded"),
        ("U0MGR1", APPROVER, "pending", ("U0MGR1",), "second, different approver"),
    ],
)
def test_refusal_to_decide(user, roles, status, approvals, says) -> None:
    reason = refusal_to_decide(user, roles, "U0AGENT", status, approvals)
    assert (reason is None) if says is None else (says in reason)


@pytest.mark.parametrize(
    ("amount", "self_before", "all_before", "needed"),
    [
        (500000, 0, 0, 0),
        (100000, 400000, 400000, 0),  # adds up to exactly the threshold
        (100001, 400000, 400000, 1),  # splitting does not dodge it
        (100, 500000, 500000, 1),
        (100, 0, 2000000, 2),  # the second threshold counts everyone's requests on the payment
    ],
)
def test_thresholds_apply_to_what_a_payment_adds_up_to(amount, self_before, all_before, needed) -> None:
    assert (
        approvals_needed(
            APPROVER, amount, "usd", THRESHOLDS, SECOND, self_approved_before=self_before, requested_before=all_before
        )
        == needed
    )
