"""Home tabs we published: who has one, what it shows, and whether it is out of date."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import psycopg

PUBLISHED = """
INSERT INTO home_tabs (user_id, shows, published_at, stale_since) VALUES (%(user)s, %(shows)s, %(now)s, NULL)
ON CONFLICT (user_id) DO UPDATE SET shows = EXCLUDED.shows, published_at = EXCLUDED.published_at,
    stale_since = CASE WHEN home_tabs.stale_since > %(now)s THEN home_tabs.stale_since END
"""

# coalesce: a tab already waiting keeps its place in the queue.
MARK_STALE = """
UPDATE home_tabs SET stale_since = coalesce(stale_since, %(now)s)
WHERE user_id = ANY(%(users)s) OR shows && %(sections)s::text[]
"""

CLAIM_STALE = """
UPDATE home_tabs SET stale_since = NULL
WHERE user_id IN (
    SELECT user_id FROM home_tabs WHERE stale_since IS NOT NULL ORDER BY stale_since LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
RETURNING user_id
"""


def published(conn: psycopg.Connection, user: str, shows: Iterable[str], now: datetime) -> None:
    """Note that a user's tab was just published, showing these sections (a change after `now` keeps it stale)."""
    conn.execute(PUBLISHED, {"user": user, "shows": sorted(shows), "now": now})


def mark_stale(
    conn: psycopg.Connection, *, users: Iterable[str] = (), sections: Iterable[str] = (), now: datetime
) -> int:
    """Mark the tabs of these users, and of everyone whose tab shows one of these sections, as out of date."""
    return conn.execute(MARK_STALE, {"users": list(users), "sections": list(sections), "now": now}).rowcount


def claim_stale(conn: psycopg.Connection, limit: int = 20) -> list[str]:
    """Take up to `limit` out-of-date tabs to publish again (two workers never take the same one)."""
    return [row[0] for row in conn.execute(CLAIM_STALE, {"limit": limit}).fetchall()]
