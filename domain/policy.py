"""Who may do what with a refund request, and how many approvals it needs. Pure: no I/O."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from domain.models import Payment, PaymentView, refundable
from domain.money import format_amount

# Disputes that still decide where the money goes: refunding now would pay twice.
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")
_GROUP_ID = re.compile(r"S[A-Z0-9]{2,}")
OPEN_DISPUTE = frozenset({"needs_response", "under_review", "warning_needs_response", "warning_under_review"})


@dataclass(frozen=True, slots=True)
class Roles:
    """What a Slack user may do."""

    requester: bool
    approver: bool


@dataclass(frozen=True, slots=True)
class RoleConfig:
    """REQUESTERS, APPROVERS and ADMINS (None: everyone) and ONCALL_GROUP: user ids and user-group ids."""

    requesters: frozenset[str] | None
    approvers: frozenset[str] | None
    admins: frozenset[str]
    oncall: frozenset[str] = frozenset()
    viewers: frozenset[str] | None = None  # VIEWERS; None: everyone

    def groups(self) -> set[str]:
        """The user-group ids named anywhere (their members must be looked up)."""
        named = set(self.admins) | set(self.requesters or ()) | set(self.approvers or ()) | set(self.oncall)
        named |= set(self.viewers or ())
        return {i for i in named if is_group_id(i)}


Members = Callable[[str], frozenset[str]] | Mapping[str, frozenset[str]]


def is_user_id(principal: str) -> bool:
    """A Slack user id (U…, or W… on Enterprise Grid); a group id (S…) is never a user."""
    return bool(_USER_ID.fullmatch(principal))


def is_group_id(principal: str) -> bool:
    """A Slack user-group id (S…)."""
    return bool(_GROUP_ID.fullmatch(principal))


def _lookup(members: Members) -> Callable[[str], frozenset[str]]:
    if isinstance(members, Mapping):
        return lambda group: members.get(group, frozenset())
    return members


def named_directly(user: str, *principal_sets: frozenset[str] | None) -> bool:
    """Whether a user id is listed by id in any of the sets (no Slack call needed)."""
    return is_user_id(user) and any(user in (s or ()) for s in principal_sets)


def member_of(user: str, members: Members, *principal_sets: frozenset[str] | None) -> bool:
    """Whether a user id is listed, directly first, then in one of the sets' groups (looked up only then)."""
    if not is_user_id(user):
        return False
    if named_directly(user, *principal_sets):
        return True
    find = _lookup(members)
    groups = sorted({g for s in principal_sets for g in (s or ()) if is_group_id(g)})
    return any(user in find(g) for g in groups)


def is_requester(user: str, config: RoleConfig, members: Members) -> bool:
    """Whether the user may ask for refunds (everyone when REQUESTERS is unset)."""
    if config.requesters is None:
        return is_user_id(user)
    return member_of(user, members, config.admins, config.requesters)


def is_approver(user: str, config: RoleConfig, members: Members) -> bool:
    """Whether the user may approve or reject (nobody but admins when APPROVERS is unset)."""
    return member_of(user, members, config.admins, config.approvers)


def is_oncall(user: str, config: RoleConfig, members: Members) -> bool:
    """Whether the user may take disputes: approvers, admins and ONCALL_GROUP."""
    return member_of(user, members, config.admins, config.approvers, config.oncall)


def is_viewer(user: str, config: RoleConfig, members: Members) -> bool:
    """Whether the user may see payment details (everyone when VIEWERS is unset; approvers and admins always)."""
    if config.viewers is None:
        return is_user_id(user)
    return member_of(user, members, config.admins, config.approvers, config.viewers)


def roles_of(user: str, config: RoleConfig, members: Members) -> Roles:
    """A user's roles, given the members of each named user group."""
    return Roles(requester=is_requester(user, config, members), approver=is_approver(user, config, members))


def approvals_needed(
    roles: Roles,
    amount: int,
    currency: str,
    thresholds: Mapping[str, int],
    second_thresholds: Mapping[str, int] | None = None,
    *,
    self_approved_before: int = 0,
    requested_before: int = 0,
) -> int:
    """0: runs at once; 1: one approver other than the requester; 2: two different approvers.

    The thresholds apply to what a payment's refunds add up to, not to each request, so that
    splitting a refund into small ones changes nothing: `self_approved_before` is what this person
    already refunded on the payment without a second pair of eyes, `requested_before` what all
    live requests on it already add up to. A currency without a threshold always needs an approver.
    """
    limit = thresholds.get(currency)
    second = (second_thresholds or {}).get(currency)
    if second is not None and requested_before + amount > second:
        return 2
    if roles.approver and limit is not None and self_approved_before + amount <= limit:
        return 0
    return 1


def refusal_to_refund(view: PaymentView, amount: int | None) -> str | None:
    """Why this payment cannot be refunded by this amount now, or None when it can."""
    p: Payment = view.payment
    if p.status != "succeeded" or p.amount_captured <= 0:
        state = (
            "is not captured yet"
            if p.status == "requires_capture"
            else f"has not succeeded ({p.status.replace('_', ' ')})"
        )
        return f"`{p.id}` {state}: there is nothing to refund."
    left = refundable(view)
    if left <= 0:
        return f"`{p.id}` is already fully refunded (or refunds under way cover all of it)."
    disputed = [d for d in view.disputes if d.status in OPEN_DISPUTE]
    if disputed:
        return (
            f"`{p.id}` has an open dispute (`{disputed[0].id}`, {disputed[0].status.replace('_', ' ')}): "
            "respond to the dispute in Stripe instead; a refund now could pay the customer twice."
        )
    if amount is not None and amount > left:
        return f"That is more than the {format_amount(left, p.currency)} still refundable on `{p.id}`."
    return None


def refusal_to_decide(
    user: str, roles: Roles, requested_by: str, status: str, approvals: tuple[str, ...] | list[str]
) -> str | None:
    """Why this user may not approve or reject this request now, or None when they may."""
    if status != "pending":
        return f"This request is already {status}."
    if not roles.approver:
        return "Only approvers can approve or reject refund requests."
    if user == requested_by:
        return "You asked for this refund, so someone else has to approve it."
    if user in approvals:
        return "You already approved this request; it needs a second, different approver."
    return None
