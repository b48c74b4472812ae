"""The audit log's hash chain: sealed in commit order, verified, and broken by any change made behind its back."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator

import psycopg
import pytest
from click.testing import CliRunner
from support import wait_until

from cli import main
from domain.audit_chain import GENESIS, chain_hash
from domain.clock import utcnow
from services import audit_trail
from store import audit, audit_chain, db


@pytest.fixture
def pool(db_url: str) -> Iterator:
    p = db.open_pool(db_url, max_size=12)
    p.wait()
    yield p
    p.close()


def _write(pool, n: int, *, actor: str = "U0TEST1") -> None:
    with db.transaction(pool) as conn:
        for i in range(n):
            audit.record(conn, actor=actor, surface="slack", action="test.did", subject=f"thing:{i}", details={"i": i})


def _ids(conn: psycopg.Connection) -> list[int]:
    return [r[0] for r in conn.execute("SELECT id FROM audit_log ORDER BY id")]


def test_a_fresh_chain_verifies_and_its_head_covers_every_record(pool, conn) -> None:
    assert audit_trail.verify(pool).ok  # empty
    _write(pool, 5)
    waiting = audit_trail.verify(pool)
    assert waiting.ok and waiting.queued == 5 and waiting.checked == 0
    assert audit_trail.seal(pool, now=utcnow()) == 5
    verdict = audit_trail.verify(pool)
    assert verdict.ok and verdict.checked == 5 and verdict.queued == 0 and verdict.head_seq == 5
    chain = conn.execute(
        "SELECT seq, record_id, prev_hash, hash, content_hash FROM audit_chain ORDER BY seq"
    ).fetchall()
    assert [r[1] for r in chain] == _ids(conn)
    prev = GENESIS
    for _, _, prev_hash, link, content in chain:
        assert prev_hash == prev and link == chain_hash(prev, content)
        prev = link
    assert audit_trail.verify(pool, anchor=verdict.head_hash).ok


def test_records_committed_out_of_id_order_are_sealed_in_commit_order(pool, conn) -> None:
    with db.connection(pool) as slow, slow.transaction():
        audit.record(slow, actor="U0SLOW", surface="slack", action="test.slow", subject="slow")  # the lower id
        _write(pool, 3)  # committed first, with higher ids
        assert audit_trail.seal(pool, now=utcnow()) == 3  # the slow one is not visible yet
    assert audit_trail.seal(pool, now=utcnow()) == 1
    order = [r[0] for r in conn.execute("SELECT record_id FROM audit_chain ORDER BY seq")]
    assert order[-1] == min(order)  # sealed last though its id is the lowest
    assert audit_trail.verify(pool).ok


def test_eight_concurrent_writers_with_a_sealer_running_leave_a_chain_that_verifies(pool, conn) -> None:
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        rng = random.Random(n)
        try:
            for t in range(15):
                with db.transaction(pool) as c:
                    for i in range(rng.randint(1, 3)):
                        audit.record(c, actor=f"U0W{n}", surface="worker", action="test.write", subject=f"{n}:{t}:{i}")
                        # Interleave with the other writers, so commits come out of id order.
                        stop.wait(rng.random() * 0.004)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread below
            errors.append(exc)

    def sealer() -> None:
        while not stop.is_set():
            audit_trail.seal(pool, now=utcnow())
            stop.wait(0.002)

    sealing = threading.Thread(target=sealer)
    sealing.start()
    writers = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(60)
    stop.set()
    sealing.join(10)
    assert not errors
    audit_trail.seal(pool, now=utcnow(), wait=True)
    verdict = audit_trail.verify(pool)
    total = conn.execute("SELECT count(*) FROM audit_log").fetchone()[0]
    assert verdict.ok and verdict.checked == total and verdict.queued == 0
    assert conn.execute("SELECT count(*), max(seq) FROM audit_chain").fetchone() == (total, total)


def test_two_sealers_never_seal_one_record_twice(pool, conn) -> None:
    _write(pool, 200)
    counts: list[int] = []
    threads = [
        threading.Thread(target=lambda: counts.append(audit_trail.seal(pool, now=utcnow(), wait=True, batch=7)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(counts) == 200 and audit_trail.verify(pool).checked == 200


def _tamper(conn: psycopg.Connection, sql: str, params: tuple = ()) -> None:
    """As a superuser who turned the append-only triggers off, then on again."""
    conn.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")
    conn.execute("ALTER TABLE audit_chain DISABLE TRIGGER USER")
    conn.execute(sql, params or None)
    conn.execute("ALTER TABLE audit_log ENABLE TRIGGER USER")
    conn.execute("ALTER TABLE audit_chain ENABLE TRIGGER USER")
    conn.commit()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("UPDATE audit_log SET details = '{{\"i\": 99}}' WHERE id = {victim}", "content_changed"),
        ("UPDATE audit_log SET actor = 'U0SOMEONEELSE' WHERE id = {victim}", "content_changed"),
        ("UPDATE audit_log SET at = at - interval '1 second' WHERE id = {victim}", "content_changed"),
        ("DELETE FROM audit_log WHERE id = {victim}", "record_missing"),
        # Two records swap places in the chain.
        (
            "UPDATE audit_chain SET record_id = -1 WHERE record_id = {other};"
            " UPDATE audit_chain SET record_id = {other} WHERE record_id = {victim};"
            " UPDATE audit_chain SET record_id = {victim} WHERE record_id = -1",
            "content_changed",
        ),
        # A sealed record's link removed from the chain.
        ("DELETE FROM audit_chain WHERE record_id = {victim}", "link_removed"),
    ],
)
def test_a_change_behind_the_chains_back_is_found_and_named(pool, conn, change, reason) -> None:
    _write(pool, 6)
    audit_trail.seal(pool, now=utcnow())
    _write(pool, 2)  # unsealed records after the head change nothing
    ids = _ids(conn)
    victim, other = ids[3], ids[1]
    conn.rollback()
    _tamper(conn, change.format(victim=victim, other=other))
    verdict = audit_trail.verify(pool)
    assert not verdict.ok
    assert verdict.problem.reason == reason
    named = victim  # the record at the first place that does not match (a swap puts the victim first)
    assert verdict.problem.record_id == named, verdict.problem.text
    result = CliRunner().invoke(main, ["audit", "verify"], env={"DATABASE_URL": pool.conninfo, "LOG_LEVEL": "ERROR"})
    assert result.exit_code == 1 and f"audit record {named}" in result.output and "BROKEN" in result.output


def test_a_record_written_around_the_chain_is_found(pool, conn) -> None:
    _write(pool, 3)
    audit_trail.seal(pool, now=utcnow())
    conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_to_seal")
    conn.execute("INSERT INTO audit_log (actor, surface, action, subject) VALUES ('U0X', 'slack', 'forged', 'x')")
    conn.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_to_seal")
    conn.commit()
    verdict = audit_trail.verify(pool)
    assert verdict.problem is not None and verdict.problem.reason == "never_sealed"


def test_a_chain_rewritten_after_a_change_is_caught_by_the_anchor_kept_outside(pool, conn) -> None:
    _write(pool, 5)
    audit_trail.seal(pool, now=utcnow())
    anchor = audit_trail.verify(pool).head_hash
    victim = _ids(conn)[2]
    conn.rollback()
    # The forger edits a record and recomputes every seal from it on: the chain is consistent again.
    _tamper(conn, "UPDATE audit_log SET details = '{\"i\": 42}' WHERE id = %s", (victim,))
    conn.execute("ALTER TABLE audit_chain DISABLE TRIGGER USER")
    rows = conn.execute(
        "SELECT c.seq, audit_content_hash(a) FROM audit_chain c JOIN audit_log a ON a.id = c.record_id ORDER BY c.seq"
    ).fetchall()
    prev = GENESIS
    for seq, content in rows:
        link = chain_hash(prev, content)
        conn.execute(
            "UPDATE audit_chain SET content_hash = %s, prev_hash = %s, hash = %s WHERE seq = %s",
            (content, prev, link, seq),
        )
        prev = link
    conn.execute("ALTER TABLE audit_chain ENABLE TRIGGER USER")
    conn.commit()
    assert audit_trail.verify(pool).ok  # without the anchor nothing shows
    anchored = audit_trail.verify(pool, anchor=anchor)
    assert not anchored.ok and anchor.hex() in anchored.anchor_problem


def test_verify_since_a_time_starts_there(pool, conn) -> None:
    _write(pool, 3)
    audit_trail.seal(pool, now=utcnow())
    later = utcnow()
    wait_until(lambda: utcnow() > later, timeout=2, what="the clock moving on", every=0.001)
    _write(pool, 2)
    audit_trail.seal(pool, now=utcnow())
    verdict = audit_trail.verify(pool, since=later)
    assert verdict.ok and verdict.checked == 2 and verdict.first_seq == 4


def test_the_append_only_triggers_stay(pool, conn) -> None:
    conn.execute("INSERT INTO audit_log (actor, surface, action, subject) VALUES ('U1', 'slack', 'x', 'pi_1')")
    for statement in ("UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log"):
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute(statement)
        conn.rollback()
        conn.execute("INSERT INTO audit_log (actor, surface, action, subject) VALUES ('U1', 'slack', 'x', 'pi_1')")
    conn.commit()
    assert audit_chain.queued(conn) == 1  # the refused statements rolled their inserts back
    conn.commit()
    audit_trail.seal(pool, now=utcnow())
    with pytest.raises(psycopg.errors.RaiseException, match="audit_chain is append-only"):
        conn.execute("DELETE FROM audit_chain")
