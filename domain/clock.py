"""The one clock. Pure functions take `now`; edges call utcnow()."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, aware, in UTC (freezegun moves it in tests)."""
    return datetime.now(UTC)
