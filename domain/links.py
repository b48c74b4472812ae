"""Links into the Stripe Dashboard, for the right mode and account."""

from __future__ import annotations

DASHBOARD = "https://dashboard.stripe.com"


def dashboard_url(stripe_id: str, *, livemode: bool, account: str | None = None) -> str:
    """The Dashboard page of a payment, refund's payment, or dispute."""
    prefix = stripe_id.split("_", 1)[0]
    section = "disputes" if prefix in {"dp", "du"} else "payments"
    parts = [DASHBOARD]
    if account:
        parts.append(account)
    if not livemode:
        parts.append("test")
    parts += [section, stripe_id]
    return "/".join(parts)
