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


def incident_step(incident_id: int, step: str) -> str:
    """A once-only reply in an incident's thread ('escalated', 'acknowledged')."""
    return f"incident-step:{incident_id}:{step}"


def account_problem(account: str, problem: str, event_id: str) -> str:
    """A connected account's problem alert (the event that showed it names it)."""
    return f"account:{account}:{problem}:{event_id}"


def account_event(account: str, event_id: str, problem: str) -> str:
    """A note an account event adds to a problem's thread (once per event)."""
    return f"account-event:{account}:{event_id}:{problem}"


def dispute_refresh(dispute_id: str, kind: str) -> str:
    """The note when a dispute's evidence deadline passes (once)."""
    return f"dispute-refresh:{dispute_id}:{kind}"


def recon_day(account: str | None, day: str) -> str:
    """A day's reconciliation report for one Stripe account (re-runs update it and reply in its thread)."""
    return f"recon-day:{account or 'platform'}:{day}"


def recon_payout(payout_id: str) -> str:
    """A payout's reconciliation note."""
    return f"recon-payout:{payout_id}"


def payout_failed(payout_id: str) -> str:
    """The on-call alert of a failed payout (once per payout)."""
    return f"payout-failed:{payout_id}"
