"""Paging and escalation rules, pure: severities, when an open incident escalates, endpoint silence,
and what PagerDuty's Events API v2 answers mean for a queued event."""

from __future__ import annotations

from datetime import datetime, timedelta

# PagerDuty severities: an incident pages as an error; one still open after the escalation delay
# pages again as critical (the SOP's "page BillingManager + DevOps").
PAGE_SEVERITY = "error"
ESCALATED_SEVERITY = "critical"
SEVERITIES = ("critical", "error", "warning", "info")


def escalation_due(*, opened_at: datetime, escalated_at: datetime | None, now: datetime, after: timedelta) -> bool:
    """Whether an open incident escalates now: once, when it has lasted `after`."""
    return escalated_at is None and now - opened_at >= after


def silence_step(
    *, incident_open: bool, last_arrival: datetime | None, stripe_has_newer: bool, now: datetime, silence: timedelta
) -> str:
    """'open', 'recover' or 'none' for the silent-endpoint incident.

    Silent: no event has arrived by webhook for `silence` while Stripe's events list has events
    created after the last arrival. A desk that never received a webhook is not silent (not yet
    set up); an incident recovers as soon as a webhook arrives again.
    """
    if last_arrival is None:
        return "none"
    quiet = now - last_arrival >= silence
    if not incident_open:
        return "open" if quiet and stripe_has_newer else "none"
    return "none" if quiet else "recover"


def pagerduty_outcome(status: int | None) -> str:
    """What to do with a queued event after PagerDuty's answer: 'sent', 'retry', 'throttled' or 'dead'.

    PagerDuty's table: 202 accepted; 400 a bad event (never retried); 429 and 5xx, or no answer,
    retried after some time. Anything else (a proxy's 404, a 401) is a configuration problem that a
    retry may outlive, so it is retried too.
    """
    if status is not None and 200 <= status < 300:
        return "sent"
    if status == 400:
        return "dead"
    if status == 429:
        return "throttled"
    return "retry"


def hook_outcome(status: int | None) -> str:
    """What an outgoing hook's answer means: 'sent' on any 2xx, otherwise 'retry' (until dead-lettered)."""
    return "sent" if status is not None and 200 <= status < 300 else "retry"
