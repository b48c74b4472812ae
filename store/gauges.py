"""Counts read when Prometheus scrapes /metrics: the event inbox and refund requests by status."""

from __future__ import annotations

import psycopg

REQUESTS = "SELECT status, count(*) FROM refund_requests GROUP BY status"
BACKLOG = """
SELECT status, count(*) FROM stripe_events WHERE status IN ('pending', 'failed', 'dead') GROUP BY status
"""


def event_backlog(conn: psycopg.Connection) -> dict[str, int]:
    """Stored events not yet applied (or given up on), by status."""
    return dict(conn.execute(BACKLOG).fetchall())


def requests_by_status(conn: psycopg.Connection) -> dict[str, int]:
    """Refund requests by status."""
    return dict(conn.execute(REQUESTS).fetchall())
