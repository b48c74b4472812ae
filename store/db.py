"""Connection pool and the database URL (embedded by default)."""

from __future__ import annotations

import logging
import select
import traceback
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


# SQLSTATE classes and codes that say the server (not one statement or its data) is in trouble:
# connection exceptions, insufficient resources, shutdown or restart, system errors. The rest of
# psycopg's OperationalError (program limits, canceled queries, lock and deadlock failures) are
# about one statement: treating them as an outage would retry that statement for ever.
_OUTAGE_CLASSES = frozenset({"08", "53", "58", "F0"})
_OUTAGE_STATES = frozenset({"57P01", "57P02", "57P03", "57P04", "57P05"})


def is_outage(exc: BaseException, conn: psycopg.Connection | None = None) -> bool:
    """Whether an error means the database is unreachable or failing, rather than refusing one statement."""
    if isinstance(exc, PoolTimeout) or (conn is not None and (conn.closed or conn.broken)):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    # No SQLSTATE: libpq itself failed (refused, reset, closed), before or without a server answer.
    return state is None or state[:2] in _OUTAGE_CLASSES or state in _OUTAGE_STATES


def message(exc: BaseException) -> str:
    """An error's class and primary message, fit for logs and last_error: never a row's contents.

    psycopg's str() appends the server's DETAIL and CONTEXT lines ("Failing row contains (...)",
    the JSON around a bad token), which carry customer data.
    """
    text = ""
    if isinstance(exc, psycopg.Error):
        text = exc.diag.message_primary or ""
    text = text or (str(exc).splitlines() or [""])[0]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class RowDetailFilter(logging.Filter):
    """Keeps psycopg's DETAIL lines (a failing row's contents, customer emails) out of every log record.

    A traceback prints str(exc), which for psycopg includes DETAIL; the record keeps its stack but
    shows the error as message() does.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite records that carry a psycopg error; never drop one."""
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, psycopg.Error):
            stack = "".join(traceback.format_tb(exc.__traceback__))
            record.msg = f"{record.getMessage()} [{message(exc)}]"
            record.args = None
            record.exc_info = None
            record.exc_text = None
            record.stack_info = f"Traceback (most recent call last):\n{stack.rstrip()}"
        return True


@contextmanager
def connection(pool: ConnectionPool, *, timeout: float | None = None) -> Iterator[psycopg.Connection]:
    """An autocommit connection; the database being unreachable becomes DatabaseUnavailable."""
    conn: psycopg.Connection | None = None
    try:
        with pool.connection(timeout=timeout) as conn:
            yield conn
    except (PoolTimeout, psycopg.Error) as exc:
        if is_outage(exc, conn):
            raise DatabaseUnavailable() from exc
        raise


@contextmanager
def transaction(pool: ConnectionPool, *, timeout: float | None = None) -> Iterator[psycopg.Connection]:
    """A connection in a transaction: committed on success, rolled back on error."""
    with connection(pool, timeout=timeout) as conn, conn.transaction():
        yield conn


# After a burst a queue's statistics lag (a table of finished rows that suddenly holds thousands of
# due ones), and the planner then reads every due row and sorts them, at each claim: 300 ms per claim
# at 25,000 due events, measured. The queues' partial indexes already hold due rows in claim order;
# with sorts and bitmap scans off that index is the only plan left. Only for the claim.
_INDEX_ORDER = "SELECT set_config('enable_sort', 'off', true), set_config('enable_bitmapscan', 'off', true)"
_ANY_ORDER = "SELECT set_config('enable_sort', 'on', true), set_config('enable_bitmapscan', 'on', true)"


@contextmanager
def index_order(conn: psycopg.Connection) -> Iterator[None]:
    """Inside a transaction: queries of the block read in an index's order, whatever the statistics say."""
    conn.execute(_INDEX_ORDER)
    yield
    conn.execute(_ANY_ORDER)
