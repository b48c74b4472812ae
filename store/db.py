"""Connection pool and the database URL (embedded by default)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from domain.errors import DatabaseUnavailable
from settings import Settings
from store import embedded

log = logging.getLogger(__name__)


def database_url(settings: Settings) -> str:
    """The configured DATABASE_URL, or the embedded server's, started on demand."""
    if settings.database_url:
        return settings.database_url
    return embedded.start(settings.data_dir)


def open_pool(conninfo: str, *, max_size: int = 8, min_size: int = 1, name: str = "desk") -> ConnectionPool:
    """A pool that survives a database restart: broken connections are checked out and replaced."""
    pool = ConnectionPool(
        conninfo,
        min_size=min_size,
        max_size=max_size,
        name=name,
        open=False,
        timeout=5.0,
        # A restarted server leaves dead connections in the pool; checking on checkout costs one
        # round trip on a local socket and means the first request after a restart succeeds.
        check=ConnectionPool.check_connection,
        reconnect_timeout=0,  # keep trying to reconnect forever; /readyz reports meanwhile
        # Single statements (the webhook insert, lookups) commit in one round trip;
        # multi-statement work opens an explicit transaction (transaction() below).
        kwargs={"autocommit": True},
    )
    pool.open(wait=False)
    return pool


@contextmanager
def connection(pool: ConnectionPool, *, timeout: float | None = None) -> Iterator[psycopg.Connection]:
    """An autocommit connection; database trouble becomes DatabaseUnavailable."""
    try:
        with pool.connection(timeout=timeout) as conn:
            yield conn
    except (PoolTimeout, psycopg.OperationalError) as exc:
        raise DatabaseUnavailable() from exc


@contextmanager
def transaction(pool: ConnectionPool, *, timeout: float | None = None) -> Iterator[psycopg.Connection]:
    """A connection in a transaction: committed on success, rolled back on error."""
    with connection(pool, timeout=timeout) as conn, conn.transaction():
        yield conn
