"""The token bucket in SQL (one statement finds the key and charges it), and Idempotency-Key slots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from store import api_keys

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.fixture
def key(conn: psycopg.Connection) -> int:
    made = api_keys.create(
        conn, name="crm", key_hash="a" * 64, prefix="rdk_abcdef", scopes=["read"], created_by="test", now=T0
    )
    conn.commit()
    return made.id


@pytest.mark.parametrize(
    ("rate", "burst", "calls", "allowed"),
    [
        # (seconds after T0) of each call → whether it was let through
        (1, 3, [0, 0, 0, 0], [True, True, True, False]),
        (1, 3, [0, 0, 0, 0, 1], [True, True, True, False, True]),
        (1, 3, [0, 0, 0, 0, 0.5, 1.0], [True, True, True, False, False, True]),
        (10, 20, [0] * 21, [True] * 20 + [False]),
        (1, 2, [0, 0, 100, 100, 100], [True, True, True, True, False]),  # refills to the burst, never past it
        (1, 2, [5, 0, 5.5], [True, True, False]),  # a clock behind the last call neither refills nor rewinds
    ],
)
def test_token_bucket(conn, key, rate: float, burst: int, calls: list[float], allowed: list[bool]) -> None:
    got = []
    for seconds in calls:
        caller = api_keys.authenticate(conn, "a" * 64, rate=rate, burst=burst, now=T0 + timedelta(seconds=seconds))
        assert caller is not None and caller.name == "crm" and caller.scopes == ["read"]
        got.append(caller.allowed)
    assert got == allowed


def test_unknown_and_revoked_keys_are_not_found(conn, key) -> None:
    assert api_keys.authenticate(conn, "b" * 64, rate=1, burst=1, now=T0) is None
    assert api_keys.revoke(conn, "crm", T0) is not None
    assert api_keys.authenticate(conn, "a" * 64, rate=1, burst=1, now=T0) is None
    assert api_keys.revoke(conn, "crm", T0) is None


def test_an_idempotency_slot_is_taken_once_then_answered_then_expires(conn, key) -> None:
    first = api_keys.claim(conn, key, "k1", "hash1", T0)
    assert first.owned
    busy = api_keys.claim(conn, key, "k1", "hash1", T0 + timedelta(seconds=1))
    assert not busy.owned and busy.status is None
    api_keys.answer(conn, key, "k1", 201, {"number": 7})
    done = api_keys.claim(conn, key, "k1", "hash2", T0 + timedelta(seconds=2))
    assert (done.owned, done.request_hash, done.status, done.response) == (False, "hash1", 201, {"number": 7})
    assert api_keys.claim(conn, key, "k1", "hash2", T0 + timedelta(hours=25)).owned  # a day later, a new slot


def test_a_slot_abandoned_unanswered_is_taken_over_and_a_released_one_is_free(conn, key) -> None:
    assert api_keys.claim(conn, key, "k2", "h", T0).owned
    assert not api_keys.claim(conn, key, "k2", "h", T0 + timedelta(seconds=30)).owned
    assert api_keys.claim(conn, key, "k2", "h", T0 + timedelta(seconds=61)).owned
    api_keys.release(conn, key, "k2")
    assert api_keys.claim(conn, key, "k2", "h", T0 + timedelta(seconds=62)).owned
