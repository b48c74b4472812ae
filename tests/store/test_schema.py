from __future__ import annotations

import psycopg
import pytest

from store import migrate

PAYMENT = (
    "INSERT INTO payments (id, payment_intent_id, charge_id, amount, amount_captured, amount_refunded, currency,"
    " status, stripe_created, observed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, now(), now())"
)


def test_migrations_are_applied_once(db_url: str) -> None:
    assert migrate.migrate(db_url) == []  # the template already has everything
    with psycopg.connect(db_url) as conn:
        assert migrate.pending(conn) == []
        assert migrate.applied(conn) == {m.version for m in migrate.available()}


def test_upgrading_step_by_step_with_data_gives_the_fresh_install_schema(pg_server_url: str, db_url: str) -> None:
    from conftest import with_database

    name = "fresh_" + db_url.rsplit("/", 1)[1].split("?")[0]
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        old = with_database(pg_server_url, name)
        versions = [m.version for m in migrate.available()]
        assert migrate.migrate(old, upto=versions[0]) == versions[:1]
        with psycopg.connect(old) as conn:  # a database in use, as a deployed one would be
            conn.execute(PAYMENT, ("pi_1", "pi_1", "ch_1", 1000, 1000, 0, "usd", "succeeded"))
            assert migrate.pending(conn) == versions[1:]
        assert migrate.migrate(old) == versions[1:]
        assert _schema(old) == _schema(db_url)
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def _schema(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return (
            conn.execute(
                "SELECT table_name, column_name, data_type, is_nullable, column_default"
                " FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2"
            ).fetchall()
            + conn.execute(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
                " WHERE connamespace = 'public'::regnamespace ORDER BY 1"
            ).fetchall()
        )


@pytest.mark.parametrize(
    "row",
    [
        ("pi_1", "pi_1", "ch_1", 1000, 1000, 1001, "usd", "succeeded"),  # refunded more than captured
        ("pi_1", "pi_1", "ch_1", 1000, 1001, 0, "usd", "succeeded"),  # captured more than the amount
        ("pi_1", "pi_1", "ch_1", -5, 0, 0, "usd", "succeeded"),  # negative money
        ("pi_1", "pi_1", "ch_1", 1000, 0, 0, "USD", "succeeded"),  # currency not as Stripe sends it
        ("cus_1", None, "ch_1", 1000, 0, 0, "usd", "succeeded"),  # not a payment id
        ("ch_1", "pi_1", "ch_1", 1000, 0, 0, "usd", "succeeded"),  # keyed by the charge though it has a PI
    ],
)
def test_the_database_refuses_impossible_payments(conn: psycopg.Connection, row: tuple) -> None:
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(PAYMENT, row)


def test_a_status_stripe_adds_later_is_kept(conn: psycopg.Connection) -> None:
    conn.execute(PAYMENT, ("pi_1", "pi_1", "ch_1", 1000, 0, 0, "usd", "requires_reauthorization"))
    assert conn.execute("SELECT status FROM payments").fetchone() == ("requires_reauthorization",)


def test_one_pending_request_per_payment(conn: psycopg.Connection) -> None:
    insert = (
        "INSERT INTO refund_requests (payment_id, amount, currency, requested_by, requested_via,"
        " idempotency_key, expires_at) VALUES ('pi_1', 100, 'usd', 'U1', 'slash_command', %s, now())"
    )
    conn.execute(insert, ("k1",))
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(insert, ("k2",))


def test_rejection_needs_a_reason(conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            "INSERT INTO refund_requests (payment_id, amount, currency, requested_by, requested_via,"
            " idempotency_key, expires_at, status, reject_reason)"
            " VALUES ('pi_1', 100, 'usd', 'U1', 'modal', 'k', now(), 'rejected', '  ')"
        )


@pytest.mark.parametrize(
    "statement", ["UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log", "TRUNCATE audit_log"]
)
def test_audit_log_is_append_only(conn: psycopg.Connection, statement: str) -> None:
    conn.execute("INSERT INTO audit_log (actor, surface, action, subject) VALUES ('U1', 'slack', 'x', 'pi_1')")
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        conn.execute(statement)
