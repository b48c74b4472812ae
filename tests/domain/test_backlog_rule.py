from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.alerts import Incident, backlog_step

NOW = datetime(2027, 1, 1, tzinfo=UTC)
LIMIT = timedelta(seconds=120)
WINDOW = timedelta(minutes=15)


def _open(healthy_since: datetime | None = None) -> Incident:
    return Incident(
        opened_at=NOW - timedelta(hours=1), notified_rate=None, notified_at=NOW, healthy_since=healthy_since
    )


@pytest.mark.parametrize(
    ("incident", "waited", "action", "healthy_since"),
    [
        (None, timedelta(seconds=120), "none", None),  # exactly the limit: not yet
        (None, timedelta(seconds=121), "open", None),
        (None, timedelta(0), "none", None),
        (_open(), timedelta(hours=2), "none", None),  # one alert per incident: no "worse"
        (_open(NOW - timedelta(minutes=5)), timedelta(minutes=3), "none", None),  # bad again: health forgotten
        (_open(), timedelta(seconds=30), "none", NOW),  # healthy from now
        (_open(NOW - WINDOW + timedelta(seconds=1)), timedelta(0), "none", NOW - WINDOW + timedelta(seconds=1)),
        (_open(NOW - WINDOW), timedelta(0), "recover", NOW - WINDOW),  # a full window: one recovery
    ],
)
def test_backlog_step(incident, waited: timedelta, action: str, healthy_since) -> None:
    step = backlog_step(incident, waited=waited, limit=LIMIT, window=WINDOW, now=NOW)
    assert (step.action, step.healthy_since) == (action, healthy_since)
