"""The worker's settings: batch size, backlog alert, retention; defaults and refusals."""

from __future__ import annotations

import pytest

from settings import ConfigError, load_settings


def test_defaults() -> None:
    s = load_settings({})
    assert (s.event_batch_size, s.event_threads, s.backlog_alert_seconds, s.event_retention_days) == (50, 2, 120.0, 90)


def test_values_are_read() -> None:
    s = load_settings({"EVENT_BATCH_SIZE": "10", "BACKLOG_ALERT_SECONDS": "30", "EVENT_RETENTION_DAYS": "365"})
    assert (s.event_batch_size, s.backlog_alert_seconds, s.event_retention_days) == (10, 30.0, 365)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("EVENT_BATCH_SIZE", "0"),
        ("EVENT_BATCH_SIZE", "65"),  # more savepoints than Postgres caches per session
        ("EVENT_THREADS", "0"),
        ("BACKLOG_ALERT_SECONDS", "2"),
        ("BACKLOG_ALERT_SECONDS", "soon"),
        ("EVENT_RETENTION_DAYS", "30"),  # Stripe still redelivers and backfills within 30 days
        ("EVENT_RETENTION_DAYS", "1.5"),
    ],
)
def test_bad_values_are_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({name: value})
    assert any(p.startswith(name) for p in caught.value.problems)
