"""API keys (only their hashes), each key's rate bucket, and Idempotency-Key answers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from domain.errors import DeskError


class NameTaken(DeskError):
    """A live API key already has that name; revoke it first or pick another."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as listed: never the key itself."""

    id: int
    name: str
    prefix: str
    scopes: list[str]
    created_by: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Caller:
    """Who an authenticated request comes from, and whether its bucket had a token for it."""

    id: int
    name: str
    scopes: list[str]
    tokens: float
    allowed: bool


@dataclass(frozen=True, slots=True)
class Claim:
    """What an Idempotency-Key holds: nothing yet (ours to answer), an answer, or one still being made."""

    owned: bool
    request_hash: str
    status: int | None = None
    response: dict[str, Any] | None = None


CREATE = """
INSERT INTO api_keys (name, key_hash, prefix, scopes, created_by, created_at)
VALUES (%(name)s, %(key_hash)s, %(prefix)s, %(scopes)s, %(created_by)s, %(now)s)
RETURNING id, name, prefix, scopes, created_by, created_at, revoked_at
"""

LIST = """
SELECT k.id, k.name, k.prefix, k.scopes, k.created_by, k.created_at, k.revoked_at, r.at AS last_used_at
FROM api_keys k LEFT JOIN api_rate r ON r.key_id = k.id
ORDER BY k.revoked_at IS NOT NULL, k.name, k.created_at
"""

REVOKE = """
UPDATE api_keys SET revoked_at = %(now)s WHERE name = %(name)s AND revoked_at IS NULL
RETURNING id, name, prefix, scopes, created_by, created_at, revoked_at
"""

# One round trip: find the live key by its hash and take a token from its bucket. The bucket holds
# at most `burst` tokens and gains `rate` a second; a request finding less than one is refused and
# takes nothing. Only the unlogged api_rate is written, so the commit waits for no disk flush.
_REFILLED = "least(%(burst)s, r.tokens + %(rate)s * greatest(0, extract(epoch FROM (%(now)s - r.at))::float8))"
AUTHENTICATE = f"""
WITH k AS (
    SELECT id, name, scopes FROM api_keys WHERE key_hash = %(key_hash)s AND revoked_at IS NULL
), t AS (
    INSERT INTO api_rate AS r (key_id, tokens, at, allowed)
    SELECT id, %(burst)s - 1, %(now)s, true FROM k
    ON CONFLICT (key_id) DO UPDATE SET
        tokens = CASE WHEN {_REFILLED} >= 1 THEN {_REFILLED} - 1 ELSE {_REFILLED} END,
        at = greatest(r.at, %(now)s),
        allowed = {_REFILLED} >= 1
    RETURNING key_id, tokens, allowed
)
SELECT k.id, k.name, k.scopes, t.tokens, t.allowed FROM k JOIN t ON t.key_id = k.id
"""

# A key's slot is ours when it is new, when its answer is older than a day (as long as Stripe keeps
# them), or when whoever took it stopped without answering a minute ago (a crash).
CLAIM = """
INSERT INTO api_idempotency AS i (key_id, idempotency_key, request_hash, created_at)
VALUES (%(key_id)s, %(key)s, %(hash)s, %(now)s)
ON CONFLICT (key_id, idempotency_key) DO UPDATE
    SET request_hash = EXCLUDED.request_hash, status = NULL, response = NULL, created_at = EXCLUDED.created_at
    WHERE i.created_at < %(expired_before)s OR (i.status IS NULL AND i.created_at < %(abandoned_before)s)
RETURNING true
"""
CLAIMED = """
SELECT request_hash, status, response FROM api_idempotency WHERE key_id = %(key_id)s AND idempotency_key = %(key)s
"""
ANSWER = """
UPDATE api_idempotency SET status = %(status)s, response = %(response)s
WHERE key_id = %(key_id)s AND idempotency_key = %(key)s AND status IS NULL
"""
RELEASE = """
DELETE FROM api_idempotency WHERE key_id = %(key_id)s AND idempotency_key = %(key)s AND status IS NULL
"""

IDEMPOTENCY_TTL = timedelta(hours=24)
ABANDONED_AFTER = timedelta(seconds=60)


def create(
    conn: psycopg.Connection,
    *,
    name: str,
    key_hash: str,
    prefix: str,
    scopes: list[str],
    created_by: str,
    now: datetime,
) -> ApiKey:
    """Store a new key's hash; NameTaken when a live key has the name."""
    params = {
        "name": name,
        "key_hash": key_hash,
        "prefix": prefix,
        "scopes": scopes,
        "created_by": created_by,
        "now": now,
    }
    try:
        with conn.transaction(), conn.cursor(row_factory=class_row(ApiKey)) as cur:
            row = cur.execute(CREATE, params).fetchone()
    except psycopg.errors.UniqueViolation as exc:
        raise NameTaken(f"A live API key is already named {name!r}; revoke it first or pick another name.") from exc
    if row is None:  # pragma: no cover - INSERT … RETURNING always returns the row
        raise RuntimeError("API key not stored")
    return row


def listing(conn: psycopg.Connection) -> list[ApiKey]:
    """Every key, live ones first, with when each was last used (as far as its bucket remembers)."""
    with conn.cursor(row_factory=class_row(ApiKey)) as cur:
        return cur.execute(LIST).fetchall()


def revoke(conn: psycopg.Connection, name: str, now: datetime) -> ApiKey | None:
    """Revoke the live key with that name; None when there is none."""
    with conn.cursor(row_factory=class_row(ApiKey)) as cur:
        return cur.execute(REVOKE, {"name": name, "now": now}).fetchone()


def authenticate(conn: psycopg.Connection, key_hash: str, *, rate: float, burst: int, now: datetime) -> Caller | None:
    """The live key with this hash, its bucket charged one request; None for an unknown or revoked key."""
    with conn.cursor(row_factory=class_row(Caller)) as cur:
        return cur.execute(
            AUTHENTICATE, {"key_hash": key_hash, "rate": float(rate), "burst": float(burst), "now": now}
        ).fetchone()


def claim(conn: psycopg.Connection, key_id: int, key: str, request_hash: str, now: datetime) -> Claim:
    """Take an Idempotency-Key for this request, or say what it already holds."""
    params = {
        "key_id": key_id,
        "key": key,
        "hash": request_hash,
        "now": now,
        "expired_before": now - IDEMPOTENCY_TTL,
        "abandoned_before": now - ABANDONED_AFTER,
    }
    if conn.execute(CLAIM, params).fetchone() is not None:
        return Claim(owned=True, request_hash=request_hash)
    row = conn.execute(CLAIMED, params).fetchone()
    if row is None:  # pragma: no cover - the conflicting row was just there; a takeover raced us
        return Claim(owned=False, request_hash="")
    return Claim(owned=False, request_hash=row[0], status=row[1], response=row[2])


def answer(conn: psycopg.Connection, key_id: int, key: str, status: int, response: dict[str, Any]) -> None:
    """Keep the answer given to the first request with this key."""
    conn.execute(ANSWER, {"key_id": key_id, "key": key, "status": status, "response": Jsonb(response)})


def release(conn: psycopg.Connection, key_id: int, key: str) -> None:
    """Give a key back unanswered (the request failed unexpectedly, so a retry should run it)."""
    conn.execute(RELEASE, {"key_id": key_id, "key": key})
