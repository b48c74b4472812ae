"""The worker applies events in batches: urgent ones first, routine ones never starved, a failure alone,
nothing applied twice, a lock it cannot take left for later."""

from __future__ import annotations

import copy
import json
from datetime import timedelta

import psycopg
from conftest import LiveServer
from support import fixture_json

from domain.clock import utcnow
from domain.priority import event_priority
from handlers.dispatch import process_batch
from store import events

CHARGE = fixture_json("stripe/event_charge.failed__stripe-ruby-mock.json")
REFUND = fixture_json("stripe/event_charge.refund.updated__stripe-ruby-mock.json")
REFUNDED = fixture_json("stripe/event_charge.refunded__stripe-ruby-mock.json")
DISPUTE = fixture_json("stripe/event_charge.dispute.created__stripe-ruby-mock.json")


def _charge(n: int) -> dict:
    """A charge.succeeded event about a charge of its own."""
    event = copy.deepcopy(CHARGE)
    charge = event["data"]["object"]
    charge.update(
        id=f"ch_routine{n:08d}",
        payment_intent=None,
        status="succeeded",
        paid=True,
        captured=True,
        amount_captured=charge["amount"],
        failure_code=None,
        failure_message=None,
    )
    event.update(id=f"evt_routine{n:08d}", type="charge.succeeded", created=1_790_000_000 + n // 100)
    return event


def _refund(n: int) -> dict:
    event = copy.deepcopy(REFUND)
    event["data"]["object"].update(id=f"re_urgent{n:08d}", charge=f"ch_urgent{n:08d}")
    event.update(id=f"evt_urgent{n:08d}", created=1_790_000_000 + n)
    return event


def _store(db_url: str, items: list[dict]) -> None:
    """Store events as the webhook does, in one transaction (fast enough for tens of thousands)."""
    params = [
        {
            "id": e["id"],
            "type": e["type"],
            "account": e.get("account"),
            "api_version": e.get("api_version"),
            "livemode": False,
            "created": e["created"],
            "payload": json.dumps(e),
            "source": "webhook",
            "priority": event_priority(e["type"]),
        }
        for e in items
    ]
    with psycopg.connect(db_url) as conn, conn.cursor() as cur:
        cur.executemany(events.RECORD, params)


def _statuses(conn: psycopg.Connection) -> dict[str, tuple]:
    conn.rollback()
    return {r[0]: r[1:] for r in conn.execute("SELECT id, status, attempts FROM stripe_events")}


def test_a_dispute_received_behind_20000_routine_events_is_applied_within_the_next_1000(
    web: LiveServer, db_url: str, conn: psycopg.Connection
) -> None:
    _store(db_url, [_charge(n) for n in range(20_000)])
    size = web.settings.event_batch_size
    for _ in range(3):  # the worker is well into the backlog when the dispute arrives
        process_batch(web.deps.pool, web.settings, now=utcnow(), size=size)

    assert web.webhook(DISPUTE).status_code == 200  # received last
    routine_after = 0
    while True:
        batch = process_batch(web.deps.pool, web.settings, now=utcnow(), size=size)
        routine_after += sum(1 for i in batch.applied if i.startswith("evt_routine"))
        if DISPUTE["id"] in batch.applied:
            break
        assert batch.taken and routine_after < 1000, "the dispute waits behind routine events"

    assert routine_after < 1000
    alert = conn.execute(
        "SELECT channel, status FROM slack_outbox WHERE message_key = %s",
        (f"dispute:{DISPUTE['data']['object']['id']}",),
    ).fetchone()
    assert alert == ("C0DISPUTES", "queued")  # its alert is queued in the same transaction
    assert conn.execute("SELECT count(*) FROM stripe_events WHERE status = 'pending'").fetchone()[0] > 18_000


def test_routine_events_still_progress_while_urgent_ones_keep_coming(web: LiveServer, db_url: str, conn) -> None:
    _store(db_url, [_refund(n) for n in range(300)] + [_charge(n) for n in range(300)])
    size = 20
    batch = process_batch(web.deps.pool, web.settings, now=utcnow(), size=size)
    kinds = [i.split("0")[0] for i in batch.applied]
    assert kinds.count("evt_urgent") == 15 and kinds.count("evt_routine") == 5  # a quarter kept for routine
    assert batch.applied.index("evt_routine00000000") > batch.applied.index("evt_urgent00000014")  # urgent first


def test_urgent_events_take_what_routine_ones_leave(web: LiveServer, db_url: str) -> None:
    _store(db_url, [_refund(n) for n in range(30)] + [_charge(n) for n in range(2)])
    batch = process_batch(web.deps.pool, web.settings, now=utcnow(), size=20)
    assert len(batch.applied) == 20
    assert sum(1 for i in batch.applied if i.startswith("evt_routine")) == 2


def test_one_failing_event_fails_alone_its_writes_undone_and_nothing_is_applied_twice(
    web: LiveServer, db_url: str, conn: psycopg.Connection
) -> None:
    # Its payment is written first, then its embedded refund's amount is refused by the database.
    broken = copy.deepcopy(REFUNDED)
    broken["id"] = "evt_broken"
    broken["data"]["object"].update(id="ch_broken")
    broken["data"]["object"]["refunds"]["data"][0].update(id="re_broken", charge="ch_broken", amount=2**70)
    batch_events = [_charge(0), _refund(0), broken, _charge(1), _refund(1)]
    _store(db_url, batch_events)

    now = utcnow()
    batch = process_batch(web.deps.pool, web.settings, now=now, size=50)
    assert batch.failed == ["evt_broken"] and len(batch.applied) == 4
    state = _statuses(conn)
    assert state["evt_broken"] == ("failed", 1)
    assert {k: v for k, v in state.items() if k != "evt_broken"} == {
        e["id"]: ("processed", 1) for e in batch_events if e["id"] != "evt_broken"
    }
    assert conn.execute("SELECT count(*) FROM payments WHERE id = 'ch_broken'").fetchone() == (0,)  # undone
    audit_rows = conn.execute("SELECT count(*) FROM audit_log").fetchone()[0]
    assert audit_rows > 0

    # Retried once due; the others are not taken again.
    assert not process_batch(web.deps.pool, web.settings, now=now, size=50).taken
    retry = process_batch(web.deps.pool, web.settings, now=now + timedelta(hours=2), size=50)
    assert retry.taken == ["evt_broken"] and retry.failed == ["evt_broken"]
    assert _statuses(conn)["evt_broken"] == ("failed", 2)
    assert conn.execute("SELECT count(*) FROM audit_log").fetchone()[0] == audit_rows
    duplicated = conn.execute("SELECT count(*) FROM (SELECT cause FROM audit_log GROUP BY cause HAVING count(*) > 1) d")
    assert duplicated.fetchone() == (0,)


def test_an_event_whose_row_is_held_elsewhere_is_put_back_not_failed(
    web: LiveServer, db_url: str, conn: psycopg.Connection
) -> None:
    _store(db_url, [_charge(0)])
    assert process_batch(web.deps.pool, web.settings, now=utcnow(), size=50).applied == ["evt_routine00000000"]
    again = _charge(0)
    again.update(id="evt_again", created=again["created"] + 60)
    _store(db_url, [again, _charge(1)])
    with psycopg.connect(db_url) as holder:
        holder.execute("SELECT 1 FROM payments WHERE id = 'ch_routine00000000' FOR UPDATE")
        now = utcnow()
        batch = process_batch(web.deps.pool, web.settings, now=now, size=50)  # waits out the lock timeout
        assert batch.deferred == ["evt_again"] and batch.applied == ["evt_routine00000001"]
    state = _statuses(conn)
    assert state["evt_again"] == ("pending", 0)  # not an attempt, not an error
    later = process_batch(web.deps.pool, web.settings, now=now + timedelta(seconds=3), size=50)
    assert later.applied == ["evt_again"]
