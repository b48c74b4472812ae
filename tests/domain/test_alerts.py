from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.alerts import (
    Incident,
    Limits,
    Window,
    channel_for,
    incident_step,
    parse_routes,
    relative,
    reminders_due,
)

DUE = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("now", "status", "submitted", "sent", "due"),
    [
        (DUE - 72 * H - timedelta(seconds=1), "needs_response", False, set(), []),
        (DUE - 72 * H, "needs_response", False, set(), ["72h"]),
        (DUE - 50 * H, "needs_response", False, {"72h"}, []),
        (DUE - 24 * H - timedelta(seconds=1), "needs_response", False, {"72h"}, []),
        (DUE - 24 * H, "needs_response", False, {"72h"}, ["24h"]),
        (DUE - 20 * H, "needs_response", False, set(), ["24h"]),  # first seen late: only the 24 h one
        (DUE - 20 * H, "needs_response", False, {"72h", "24h"}, []),
        (DUE - 20 * H, "warning_needs_response", False, {"72h"}, ["24h"]),  # inquiries too
        (DUE - 20 * H, "under_review", False, {"72h"}, []),  # evidence is in
        (DUE - 20 * H, "needs_response", True, {"72h"}, []),
        (DUE - 20 * H, "lost", False, set(), []),  # closed
        (DUE, "needs_response", False, set(), []),  # too late
    ],
)
def test_reminder_schedule(now, status, submitted, sent, due) -> None:
    assert reminders_due(due_by=DUE, status=status, evidence_submitted=submitted, sent=sent, now=now) == due


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(days=6, hours=23), "in 6 days 23 h"),
        (timedelta(hours=24), "in 1 day"),
        (timedelta(hours=3, minutes=20), "in 3 h 20 min"),
        (timedelta(minutes=5), "in 5 min"),
        (-timedelta(hours=2), "2 h ago"),
    ],
)
def test_relative(delta, text) -> None:
    assert relative(delta) == text


LIMITS = Limits(rate=0.05, min_attempts=20, window=timedelta(minutes=15))
T0 = datetime(2026, 11, 22, tzinfo=UTC)


@pytest.mark.parametrize(
    ("window", "action"),
    [
        (Window(19, 19), "none"),  # below the minimum volume: never
        (Window(1000, 49), "none"),  # 4.9 %
        (Window(1000, 50), "none"),  # exactly 5 %: not above
        (Window(1000, 51), "open"),  # 5.1 %
        (Window(20, 2), "open"),
    ],
)
def test_opening(window: Window, action: str) -> None:
    assert incident_step(None, window, LIMITS, T0).action == action


def test_a_sustained_incident_stays_one_and_recovers_after_a_full_healthy_window() -> None:
    incident = Incident(opened_at=T0, notified_rate=0.08, notified_at=T0, healthy_since=None)
    assert incident_step(incident, Window(1000, 90), LIMITS, T0 + timedelta(minutes=30)).action == "none"
    # Clearly worse, and long enough since the last word: one update.
    assert incident_step(incident, Window(1000, 130), LIMITS, T0 + timedelta(minutes=11)).action == "worse"
    assert incident_step(incident, Window(1000, 130), LIMITS, T0 + timedelta(minutes=5)).action == "none"
    healthy = incident_step(incident, Window(1000, 10), LIMITS, T0 + timedelta(minutes=40))
    assert healthy == type(healthy)("none", healthy_since=T0 + timedelta(minutes=40))
    waiting = Incident(T0, 0.08, T0, healthy_since=T0 + timedelta(minutes=40))
    assert incident_step(waiting, Window(1000, 10), LIMITS, T0 + timedelta(minutes=54)).action == "none"
    assert incident_step(waiting, Window(1000, 10), LIMITS, T0 + timedelta(minutes=55)).action == "recover"
    # A relapse before the window is over resets the clock.
    assert incident_step(waiting, Window(1000, 90), LIMITS, T0 + timedelta(minutes=50)).healthy_since is None


def test_routes() -> None:
    routes = parse_routes("acct_1=C0ONE, acct_2/disputes=C0TWO")
    defaults = {"disputes": "C0DISPUTES", "alerts": "C0ALERTS"}
    assert channel_for("disputes", "acct_1", routes, defaults) == "C0ONE"
    assert channel_for("alerts", "acct_1", routes, defaults) == "C0ONE"
    assert channel_for("disputes", "acct_2", routes, defaults) == "C0TWO"
    assert channel_for("alerts", "acct_2", routes, defaults) == "C0ALERTS"
    assert channel_for("disputes", None, routes, defaults) == "C0DISPUTES"
    with pytest.raises(ValueError, match="acct_123"):
        parse_routes("C0ONE")
