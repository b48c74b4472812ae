"""Readiness: the database answers and its schema is current."""

from __future__ import annotations

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from store import migrate


def database_problem(pool: ConnectionPool, *, timeout: float = 2.0) -> str | None:
    """None when ready; otherwise what is wrong, in words fit for a health check."""
    try:
        with pool.connection(timeout=timeout) as conn:
            missing = migrate.pending(conn)
    except (PoolTimeout, psycopg.OperationalError):
        return "database unreachable"
    if missing:
        return f"migrations not applied: {', '.join(missing)} (run `refund-desk migrate`)"
    return None
