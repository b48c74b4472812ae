"""Who may do what with a refund request, and how many approvals it needs. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from domain.models import Payment, PaymentView, refundable
from domain.money import format_amount

# Disputes that still decide where the money goes: refunding now would pay twice.
OPEN_DISPUTE = frozenset({"needs_response", "under_review", "warning_needs_response", "warning_under_review"})


@dataclass(frozen=True, slots=True)
class Roles:
    """What a Slack user may do."""

    requester: bool
    approver: bool


@dataclass(frozen=True, slots=True)
class RoleConfig:
    """REQUESTERS, APPROVERS and ADMINS: user ids and user-group ids (None: everyone)."""

    requesters: frozenset[str] | None
    approvers: frozenset[str] | None
    admins: frozenset[str]

    def groups(self) -> set[str]:
        """The user-group ids named anywhere (their members must be looked up)."""
        named = set(self.admins) | set(self.requesters or ()) | set(self.approvers or ())
        return {i for i in named if i.startswith("S")}


def _member(user: str, principals: frozenset[str], members: Mapping[str, frozenset[str]]) -> bool:
    return user in principals or any(user in members.get(g, frozenset()) for g in principals if g.startswith("S"))


def roles_of(user: str, config: RoleConfig, members: Mapping[str, frozenset[str]]) -> Roles:
    """A user's roles, given the members of each named user group."""
    admin = _member(user, config.admins, members)
    requester = admin or config.requesters is None or _member(user, config.requesters, members)
    approver = admin or (config.approvers is not None and _member(user, config.approvers, members))
    return Roles(requester=requester, approver=approver)


def approvals_needed(roles: Roles, amount: int, currency: str, thresholds: Mapping[str, int],
                     second_thresholds: Mapping[str, int] | None = None, *, self_approved_before: int = 0,
                     requested_before: int = 0) -> int:
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
            "is not captured yet" if p.status == "requires_capture"
            else f"has not succeeded ({p.status.replace('_', ' ')})"
        )
        return f"`{p.id}` {state}: there is nothing to refund."
    left = refundable(view)
    if left <= 0:
        return f"`{p.id}` is already fully refunded (or refunds under way cover all of it)."
    disputed = [d for d in view.disputes if d.status in OPEN_DISPUTE]
    if disputed:
        return (f"`{p.id}` has an open dispute (`{disputed[0].id}`, {disputed[0].status.replace('_', ' ')}): "
                "respond to the dispute in Stripe instead; a refund now could pay the customer twice.")
    if amount is not None and amount > left:
        return f"That is more than the {format_amount(left, p.currency)} still refundable on `{p.id}`."
    return None


def refusal_to_decide(user: str, roles: Roles, requested_by: str, status: str,
                      approvals: tuple[str, ...] | list[str]) -> str | None:
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
