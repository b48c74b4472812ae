"""Which Stripe events and Slack messages go first when both kinds wait: a pure rule, tested as a table.

Urgent: what someone is waiting on or must act on soon. Disputes and early fraud warnings have
deadlines; refund events (and `charge.refunded`, whose old API versions carry the refunds) move a
refund request along or tell the feed; a Radar review holds a payment until someone looks. Routine:
payment outcomes, the bulk of any burst. Applying an urgent event before older routine ones is safe
because every merge is order-safe (domain/ordering.py): a record keeps the newest snapshot whatever
order the events arrive in, and each event is applied once, so priority changes only how soon.
"""

from __future__ import annotations

URGENT = 0
ROUTINE = 1
NAMES = {URGENT: "urgent", ROUTINE: "routine"}

_URGENT_PREFIXES = ("charge.dispute.", "radar.early_fraud_warning.", "refund.", "review.")
# A connected account disabled or disconnected alerts on-call (few events, each one acted on).
_URGENT_PREFIXES += ("account.", "capability.")
# A failed payout alerts on-call.
_URGENT_TYPES = frozenset({"charge.refund.updated", "charge.refunded", "payout.failed"})

# Of each batch the worker claims, this share is kept for routine events whenever they are due, so
# a flood of urgent ones never stops payments from being recorded (no starvation either way).
ROUTINE_SHARE = 0.25


def event_priority(event_type: str) -> int:
    """URGENT or ROUTINE for a Stripe event type (unknown types are routine: they are only marked ignored)."""
    if event_type in _URGENT_TYPES or event_type.startswith(_URGENT_PREFIXES):
        return URGENT
    return ROUTINE


def batch_split(size: int) -> tuple[int, int]:
    """How many of a batch urgent events may take first, and how many are kept for routine ones.

    Whatever one kind leaves unused the other may take; a batch under four events keeps nothing
    back (it takes the most urgent due event first).
    """
    if size < 1:
        raise ValueError("a batch holds at least one event")
    reserved = int(size * ROUTINE_SHARE)
    return size - reserved, reserved
