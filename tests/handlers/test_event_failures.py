"""The worker against events whose data breaks processing (stored by an older version, a backfill, or
anything that skipped the webhook's checks): each fails alone, is retried and dead-lettered, and the
events behind it go on; only the database being unreachable stops the queue."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
from conftest import replace_settings, with_database
from psycopg_pool import PoolTimeout
from support import fixture_json, random_id

from app import build_deps
from domain.clock import utcnow
from domain.errors import Unstorable
from handlers.dispatch import describe, process_next
from services.deps import Deps
from store import db, events, migrate

ORDINARY = fixture_json("stripe/event_charge.refunded__stripe-ruby-mock.json")
REFUND = fixture_json("stripe/event_charge.refund.updated__stripe-ruby-mock.json")
PAYMENT = fixture_json("stripe/event_payment_intent.payment_failed__lago_basil.json")
EMAIL = "customer@example.com"


def _refund_created(event_id: str, created: int = 1_500_000_000, **obj) -> dict:
    event = json.loads(json.dumps(REFUND))
    event.update(id=event_id, type="refund.created", created=created)
    event["data"]["object"].update(obj)
    return event


@pytest.fixture
def deps(settings) -> Iterator[Deps]:
    deps = build_deps(replace_settings(settings, webhook_max_attempts=2))
    yield deps
    deps.pool.close()


def _store(deps: Deps, event: dict, payload: str | None = None) -> None:
    """Store an event as a backfill or an older version would: without the webhook's checks."""
    with db.connection(deps.pool) as conn:
        assert events.record(conn, event, payload or json.dumps(event), source="backfill")


def _drain(deps: Deps, now) -> list[str]:
    taken = []
    while (event_id := process_next(deps.pool, deps.settings, now=now)) is not None:
        taken.append(event_id)
        assert len(taken) < 20, "the worker keeps taking the same events"
    return taken


def _state(conn: psycopg.Connection) -> dict[str, tuple]:
    conn.rollback()
    return {r[0]: r[1:] for r in conn.execute("SELECT id, status, attempts, last_error FROM stripe_events")}


BAD = [
    # An object id too long for the refunds table's primary key index (ProgramLimitExceeded).
    (_refund_created("evt_longobject", id=random_id("re_", 20_000)), "ProgramLimitExceeded: index row"),
    # Times that Postgres holds but Python's datetime does not.
    (_refund_created("evt_year1", created=-62135596900), "ValueError"),
    (_refund_created("evt_year33658", created=10**12), "ValueError"),
    # A value the database refuses (DataError).
    (_refund_created("evt_bigamount", amount=2**70), "NumericValueOutOfRange"),
    # A payload that is not a snapshot (a handler's KeyError).
    ({**_refund_created("evt_noobject"), "data": {}}, "KeyError"),
]


def test_events_whose_data_breaks_processing_fail_alone_and_the_rest_go_on(deps: Deps, conn) -> None:
    for event, _ in BAD:
        _store(deps, event)
    _store(deps, ORDINARY)
    now = utcnow()
    taken = _drain(deps, now)
    assert sorted(taken) == sorted([e["id"] for e, _ in BAD] + [ORDINARY["id"]])
    state = _state(conn)
    assert state[ORDINARY["id"]] == ("processed", 1, None)
    for event, error in BAD:
        status, attempts, last_error = state[event["id"]]
        assert (status, attempts) == ("failed", 1), event["id"]
        assert last_error.startswith(error), (event["id"], last_error)
    assert conn.execute("SELECT count(*) FROM refunds").fetchone() == (1,)  # only the ordinary event's

    # Retried once due, then dead-lettered (max 2 attempts here), and kept.
    assert _drain(deps, now) == []
    assert len(_drain(deps, now + timedelta(hours=2))) == len(BAD)
    assert {s[0] for i, s in _state(conn).items() if i != ORDINARY["id"]} == {"dead"}


def test_a_listing_shows_events_with_out_of_range_times(deps: Deps, conn) -> None:
    _store(deps, _refund_created("evt_year33658", created=10**12))
    _store(deps, _refund_created("evt_year1", created=-62135596900))
    with db.connection(deps.pool) as c:
        listed = events.listing(c, ["pending"])
    assert [r.id for r in listed] == ["evt_year1", "evt_year33658"]
    assert listed[0].stripe_created.year == 1 and listed[1].stripe_created.year == 9999


def test_a_payload_too_deep_for_python_fails_alone(deps: Deps, conn) -> None:
    event = _refund_created("evt_deep")
    payload = json.dumps(event).replace(
        '"object": "refund",', '"object": "refund", "x": ' + "[" * 5000 + "]" * 5000 + ",", 1
    )
    _store(deps, event, payload)
    _store(deps, ORDINARY)
    assert len(_drain(deps, utcnow())) == 2
    state = _state(conn)
    assert state[ORDINARY["id"]][0] == "processed"
    assert state["evt_deep"][:2] == ("failed", 1) and state["evt_deep"][2].startswith("RecursionError")


def test_a_refused_row_is_recorded_and_logged_without_its_contents(deps: Deps, conn, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    event = json.loads(json.dumps(PAYMENT))
    event.update(type="payment_intent.succeeded", account="org_not_an_account")  # the payments CHECK refuses it
    event["data"]["object"]["receipt_email"] = EMAIL
    _store(deps, event)
    assert _drain(deps, utcnow()) == [event["id"]]
    status, attempts, error = _state(conn)[event["id"]]
    assert (status, attempts) == ("failed", 1)
    assert error == 'CheckViolation: new row for relation "payments" violates check constraint "payments_account_check"'
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "payments_account_check" in logged and "Traceback" in logged
    assert EMAIL not in logged and "Failing row" not in logged


def test_recording_an_event_the_database_cannot_index_raises_unstorable(deps: Deps, conn) -> None:
    event = _refund_created(random_id("evt_", 20_000))
    with db.connection(deps.pool) as c, pytest.raises(Unstorable, match="ProgramLimitExceeded: index row"):
        events.record(c, event, json.dumps(event))
    with db.connection(deps.pool) as c, pytest.raises(Unstorable, match="UntranslatableCharacter"):
        events.record(c, _refund_created("evt_nul"), '{"a": "\\u0000"}')
    assert _state(conn) == {}


def test_describe_keeps_the_class_and_primary_message_only(conn) -> None:
    conn.execute("CREATE TEMP TABLE t (email text, n int CHECK (n > 0))")
    with pytest.raises(psycopg.errors.CheckViolation) as caught:
        conn.execute("INSERT INTO t VALUES (%s, -1)", (EMAIL,))
    assert "Failing row" in str(caught.value) and EMAIL in str(caught.value)  # what psycopg would show
    assert describe(caught.value) == 'CheckViolation: new row for relation "t" violates check constraint "t_n_check"'
    assert describe(ValueError(f"invalid literal for int() with base 10: '{EMAIL}'")) == (
        "ValueError: invalid literal for int() with base 10: '[email]'"
    )
    assert describe(KeyError("id")) == "KeyError: 'id'"


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (psycopg.OperationalError("connection refused"), True),  # libpq's own: no SQLSTATE
        (psycopg.errors.AdminShutdown(), True),
        (psycopg.errors.CannotConnectNow(), True),
        (psycopg.errors.ConnectionFailure(), True),
        (psycopg.errors.TooManyConnections(), True),
        (psycopg.errors.DiskFull(), True),
        (PoolTimeout(), True),
        (psycopg.errors.ProgramLimitExceeded(), False),
        (psycopg.errors.QueryCanceled(), False),
        (psycopg.errors.LockNotAvailable(), False),
        (psycopg.errors.DeadlockDetected(), False),
        (psycopg.errors.CheckViolation(), False),
        (psycopg.errors.NumericValueOutOfRange(), False),
        (psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes"), False),
        (KeyError("id"), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_only_connection_trouble_counts_as_the_database_being_down(error: BaseException, outage: bool) -> None:
    assert db.is_outage(error) is outage


def test_a_lost_connection_counts_as_the_database_being_down(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as victim:
        with psycopg.connect(db_url, autocommit=True) as killer:
            killer.execute("SELECT pg_terminate_backend(%s)", (victim.info.backend_pid,))
        with pytest.raises(psycopg.Error) as caught:
            victim.execute("SELECT 1")
        assert db.is_outage(caught.value, victim)
        assert db.is_outage(psycopg.errors.CheckViolation(), victim)  # whatever the error, the connection is gone


def test_upgrading_trims_errors_recorded_with_their_row(pg_server_url: str, db_url: str) -> None:
    name = "trim_" + db_url.rsplit("/", 1)[1].split("?")[0]
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        old = with_database(pg_server_url, name)
        migrate.migrate(old, upto="0002_alerts")
        legacy = (
            'CheckViolation: new row for relation "payments" violates check constraint "payments_status_check"'
            f"\nDETAIL:  Failing row contains (pi_1, pi_1, ch_1, null, f, 100, 100, 0, usd, x, {EMAIL})."
        )
        with psycopg.connect(old) as c:
            c.execute(
                "INSERT INTO stripe_events (id, type, stripe_created, payload, status, last_error)"
                " VALUES ('evt_old', 'payment_intent.succeeded', now(), '{}', 'dead', %s)",
                (legacy,),
            )
        migrate.migrate(old)
        with psycopg.connect(old) as c:
            assert c.execute("SELECT last_error FROM stripe_events").fetchone() == (legacy.splitlines()[0],)
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
