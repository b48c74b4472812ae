"""Links into the Stripe Dashboard, for the right mode and account."""

from __future__ import annotations

from domain.ids import kind_of

DASHBOARD = "https://dashboard.stripe.com"


def dashboard_url(stripe_id: str, *, livemode: bool, account: str | None = None) -> str:
    """The Dashboard page of a payment, refund's payment, or dispute."""
    section = "disputes" if kind_of(stripe_id) == "dispute" else "payments"
    parts = [DASHBOARD]
    if account:
        parts.append(account)
    if not livemode:
        parts.append("test")
    parts += [section, stripe_id]
    return "/".join(parts)
