"""API keys for other systems: made, listed and revoked from the CLI; checked (and rate-limited) on each call;
Idempotency-Key answers kept and replayed."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from psycopg_pool import ConnectionPool

from domain.errors import DeskError
from settings import Settings
from store import api_keys as store
from store import audit, db
from store.api_keys import ApiKey, Caller

PREFIX = "rdk_"
SCOPES = ("read", "request")
# How long a retry waits for the first request with its Idempotency-Key to be answered.
IDEMPOTENCY_WAIT_SECONDS = 8.0
_POLL_SECONDS = 0.05
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


class KeyRefused(DeskError):
    """That is not a valid API key name or scope."""


class IdempotencyMismatch(DeskError):
    """This Idempotency-Key was already used with another request body."""


class IdempotencyBusy(DeskError):
    """A request with this Idempotency-Key is still being answered; retry in a moment."""


def hash_key(key: str) -> str:
    """What we store of a key: its SHA-256 (a key is 256 random bits, so nothing slower is needed)."""
    return hashlib.sha256(key.encode()).hexdigest()


def create(pool: ConnectionPool, *, name: str, scopes: list[str], actor: str, now: datetime) -> tuple[ApiKey, str]:
    """Make a key; returns its record and the key itself, which is never stored and cannot be shown again."""
    if not _NAME.match(name):
        raise KeyRefused("A key's name is 1 to 63 lowercase letters, digits, '-', '_' or '.', e.g. crm.")
    if not scopes or any(s not in SCOPES for s in scopes):
        raise KeyRefused(f"Scopes are {' and '.join(SCOPES)}, comma-separated; got {','.join(scopes) or 'none'}.")
    key = PREFIX + secrets.token_urlsafe(32)
    with db.transaction(pool) as conn:
        made = store.create(
            conn,
            name=name,
            key_hash=hash_key(key),
            prefix=key[: len(PREFIX) + 6],
            scopes=sorted(set(scopes)),
            created_by=actor,
            now=now,
        )
        audit.record(
            conn,
            actor=actor,
            surface="cli",
            action="api_key.created",
            subject=f"api_key:{name}",
            details={"scopes": made.scopes, "prefix": made.prefix},
            at=now,
        )
    return made, key


def listing(pool: ConnectionPool) -> list[ApiKey]:
    """Every key, live first."""
    with db.connection(pool) as conn:
        return store.listing(conn)


def revoke(pool: ConnectionPool, name: str, *, actor: str, now: datetime) -> ApiKey | None:
    """Revoke the live key with that name at once; None when there is none."""
    with db.transaction(pool) as conn:
        revoked = store.revoke(conn, name, now)
        if revoked is not None:
            audit.record(
                conn,
                actor=actor,
                surface="cli",
                action="api_key.revoked",
                subject=f"api_key:{name}",
                details={"prefix": revoked.prefix},
                at=now,
            )
    return revoked


def authenticate(pool: ConnectionPool, settings: Settings, key: str, now: datetime) -> Caller | None:
    """Who calls with this key, its rate bucket charged one request; None for a key we do not know or revoked."""
    if not key.startswith(PREFIX) or len(key) > 200:
        return None  # not one of ours: no need to ask the database
    limit = settings.api_rate_limit
    with db.connection(pool) as conn:
        return store.authenticate(conn, hash_key(key), rate=limit.rate, burst=limit.burst, now=now)


def idempotent(
    pool: ConnectionPool,
    caller: Caller,
    idempotency_key: str,
    request_hash: str,
    run: Callable[[], tuple[int, dict[str, Any]]],
    *,
    now: Callable[[], datetime],
) -> tuple[int, dict[str, Any], bool]:
    """Answer a request at most once per Idempotency-Key: (status, body, replayed).

    The first request takes the key and runs; the others with the same body wait for its answer and
    get it again; one with another body raises IdempotencyMismatch. If the first one fails unexpectedly,
    the key is given back so a retry runs it.
    """
    deadline = time.monotonic() + IDEMPOTENCY_WAIT_SECONDS
    while True:
        with db.connection(pool) as conn:
            held = store.claim(conn, caller.id, idempotency_key, request_hash, now())
        if held.request_hash and held.request_hash != request_hash:
            raise IdempotencyMismatch()
        if held.owned:
            break
        if held.status is not None and held.response is not None:
            return held.status, held.response, True
        if time.monotonic() > deadline:
            raise IdempotencyBusy()
        time.sleep(_POLL_SECONDS)
    try:
        status, body = run()
    except BaseException:
        with db.connection(pool) as conn:
            store.release(conn, caller.id, idempotency_key)
        raise
    with db.connection(pool) as conn:
        store.answer(conn, caller.id, idempotency_key, status, body)
    return status, body, False
