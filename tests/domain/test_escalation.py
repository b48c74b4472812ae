"""Paging rules as tables: when an incident escalates, when an endpoint is silent, what PagerDuty's answers mean."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.escalation import escalation_due, hook_outcome, pagerduty_outcome, silence_step

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
M = timedelta(minutes=1)


@pytest.mark.parametrize(
    ("open_for", "escalated", "due"),
    [
        (29 * M, False, False),
        (30 * M, False, True),
        (90 * M, False, True),
        (90 * M, True, False),  # once
    ],
)
def test_an_incident_escalates_once_after_the_delay(open_for: timedelta, escalated: bool, due: bool) -> None:
    now = T0 + open_for
    assert escalation_due(opened_at=T0, escalated_at=now if escalated else None, now=now, after=30 * M) is due


@pytest.mark.parametrize(
    ("incident_open", "quiet_for", "stripe_has_newer", "step"),
    [
        (False, None, True, "none"),  # never received a webhook: not set up yet, not silent
        (False, 29 * M, True, "none"),
        (False, 30 * M, False, "none"),  # quiet, and so is Stripe
        (False, 30 * M, True, "open"),
        (True, 45 * M, True, "none"),  # still silent: said once
        (True, 45 * M, False, "none"),
        (True, 1 * M, False, "recover"),  # a webhook arrived
    ],
)
def test_silence(incident_open: bool, quiet_for: timedelta | None, stripe_has_newer: bool, step: str) -> None:
    last = None if quiet_for is None else T0 - quiet_for
    got = silence_step(
        incident_open=incident_open, last_arrival=last, stripe_has_newer=stripe_has_newer, now=T0, silence=30 * M
    )
    assert got == step


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(202, "sent"), (400, "dead"), (429, "throttled"), (500, "retry"), (503, "retry"), (None, "retry"), (404, "retry")],
)
def test_pagerduty_answers(status: int | None, outcome: str) -> None:
    assert pagerduty_outcome(status) == outcome


@pytest.mark.parametrize(
    ("status", "outcome"), [(200, "sent"), (204, "sent"), (410, "retry"), (500, "retry"), (None, "retry")]
)
def test_hook_answers(status: int | None, outcome: str) -> None:
    assert hook_outcome(status) == outcome
