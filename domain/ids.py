"""Stripe ids: which kind of object an id names, by its prefix. The one table of it."""

from __future__ import annotations

KINDS = {
    "pi": "payment",  # a PaymentIntent
    "ch": "payment",  # a Charge
    "py": "payment",  # a Charge made with a non-card method (ACH and others)
    "re": "refund",
    "pyr": "refund",  # a refund of a py_ payment
    "dp": "dispute",
    "du": "dispute",  # a dispute on a py_ payment
}


def prefix(stripe_id: str) -> str:
    """The prefix of an id: "pi" for "pi_3Mtw…"."""
    return stripe_id.split("_", 1)[0]


def kind_of(stripe_id: str) -> str | None:
    """payment, refund or dispute; None for an id of any other kind."""
    return KINDS.get(prefix(stripe_id))
