"""Connection pool and the database URL (embedded by default)."""

from __future__ import annotations

import logging
import select
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
        # Slack wants an answer within 3 s: a request never waits longer than this for a connection.
        timeout=2.0,
        # A restarted server leaves dead connections in the pool; this check finds them on checkout
        # without a round trip, so the first request after a restart succeeds.
        check=_alive,
        reconnect_timeout=0,  # keep trying to reconnect forever; /readyz reports meanwhile
        # Single statements (the webhook insert, lookups) commit in one round trip;
        # multi-statement work opens an explicit transaction (transaction() below).
        kwargs={"autocommit": True},
    )
    pool.open(wait=False)
    return pool


def _alive(conn: psycopg.Connection) -> None:
    """Raise if an idle connection is dead: the server closed it (a restart) or it broke.

    An idle connection has nothing to read; if its socket is readable, the server sent something
    (an EOF, a notice). libpq consumes it: an EOF raises, anything else leaves a usable connection.
    ConnectionPool.check_connection would cost a round trip (≈70 µs here) on every checkout.
    """
    if conn.closed:
        raise psycopg.OperationalError("connection closed")
    readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
    if readable:
        conn.pgconn.consume_input()
        if conn.pgconn.status != psycopg.pq.ConnStatus.OK:
            raise psycopg.OperationalError("connection broken")


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
