"""Outbox keys: the logical name of each Slack message, so a replay or a second worker never posts twice,
and replies and updates find their parent."""

from __future__ import annotations


def request(request_id: int) -> str:
    """A refund request's approval message (its thread and updates hang off it)."""
    return f"request:{request_id}"


def feed(refund_id: str) -> str:
    """A refund's message in the refunds feed."""
    return f"feed:{refund_id}"


def dispute(dispute_id: str) -> str:
    """A dispute's alert."""
    return f"dispute:{dispute_id}"


def dispute_event(event_id: str) -> str:
    """The note a dispute event adds to its alert's thread (once per event)."""
    return f"dispute-event:{event_id}"


def fraud_warning(efw_id: str) -> str:
    """An early fraud warning's alert."""
    return f"efw:{efw_id}"


def fraud_warning_event(event_id: str) -> str:
    """The note an early-fraud-warning event adds to its alert's thread."""
    return f"efw-event:{event_id}"


def review(review_id: str) -> str:
    """A Radar review's note."""
    return f"review:{review_id}"


def review_event(event_id: str) -> str:
    """The note a review event posts (once per event)."""
    return f"review-event:{event_id}"


def incident(incident_id: int) -> str:
    """An incident's alert (failure rates, a rejected key)."""
    return f"incident:{incident_id}"
