"""Refunds made outside the bot reach the refunds feed once, with their status kept current."""

from __future__ import annotations

import copy
import json

from conftest import LiveServer
from support import fixture_json, replies, top_level

FAILED = fixture_json("stripe/event_charge.refund.updated__zulip_failed_refund.json")


def _event(base: dict, event_id: str, created: int, **changes) -> dict:
    event = copy.deepcopy(base)
    event["id"], event["created"] = event_id, created
    event["data"]["object"].update(changes)
    return event


def _feed(web: LiveServer) -> list[dict]:
    return web.slack.messages.get(web.settings.refunds_feed_channel, [])


def test_a_dashboard_refund_is_posted_then_updated_in_its_thread(web: LiveServer) -> None:
    created = _event(
        FAILED, "evt_r1", 1_700_000_000, status="pending", failure_reason=None, failure_balance_transaction=None
    )
    web.webhook(created)
    web.drain()
    assert web.deliver() == 1
    [post] = _feed(web)
    text = json.dumps(post, ensure_ascii=False)
    refund = FAILED["data"]["object"]
    for expected in ("₹300,000.00", refund["payment_intent"], "pending", refund["id"], "made outside the bot"):
        assert expected in text, expected

    web.webhook(FAILED)  # later: the refund failed
    web.drain()
    assert web.deliver() == 2  # the post updated in place, and a reply in its thread
    [post] = top_level(_feed(web))
    assert "failed" in json.dumps(post) and "expired or canceled card" in json.dumps(post)
    [reply] = replies(_feed(web), post)
    assert reply["text"] == f"Refund `{refund['id']}`: ⏳ pending → ❌ failed (expired or canceled card)"

    web.webhook(FAILED)  # a redelivery
    web.drain()
    assert web.deliver() == 0


def test_a_late_older_event_changes_nothing_and_posts_nothing(web: LiveServer) -> None:
    web.webhook(FAILED)
    web.drain()
    assert web.deliver() == 1
    web.webhook(
        _event(FAILED, "evt_r0", FAILED["created"] - 60, status="pending", failure_reason=None, reason="duplicate")
    )
    web.drain()
    assert web.deliver() == 0
    [post] = _feed(web)
    assert "failed" in json.dumps(post) and "duplicate" not in json.dumps(post)


def test_refunds_made_by_the_bot_are_not_in_the_feed(web: LiveServer, conn) -> None:
    ours = _event(
        FAILED,
        "evt_ours",
        1_700_000_000,
        status="pending",
        failure_reason=None,
        metadata={"refund_desk_request": "refund-request-k42", "refund_request_id": "42"},
    )
    conn.execute(
        "INSERT INTO refund_requests (id, payment_id, amount, currency, requested_by, requested_via, idempotency_key,"
        " expires_at, status, decided_by) OVERRIDING SYSTEM VALUE"
        " VALUES (42, %s, 30000000, 'inr', 'U1', 'slash_command', 'refund-request-k42', now(), 'sent', 'U2')",
        (FAILED["data"]["object"]["payment_intent"],),
    )
    conn.commit()
    web.webhook(ours)
    web.drain()
    assert _feed(web) == []
    assert conn.execute("SELECT request_id FROM refunds").fetchone() == (42,)
    assert conn.execute("SELECT stripe_refund_id FROM refund_requests").fetchone() == (FAILED["data"]["object"]["id"],)


def test_metadata_naming_a_request_that_is_not_ours_links_nothing(web: LiveServer, conn) -> None:
    # Another installation on the same Stripe account, or a request number that means something else here.
    conn.execute(
        "INSERT INTO refund_requests (id, payment_id, amount, currency, requested_by, requested_via, idempotency_key,"
        " expires_at) OVERRIDING SYSTEM VALUE VALUES (7, 'pi_somethingelse', 500, 'usd', 'U1', 'slash_command',"
        " 'refund-request-ours', now())"
    )
    conn.commit()
    for metadata in (
        {"refund_request_id": "7"},
        {"refund_desk_request": "refund-request-ours"},
        {"refund_desk_request": "refund-request-theirs", "refund_request_id": "999"},
    ):
        event = _event(
            FAILED, f"evt_{len(str(metadata))}", 1_700_000_000, metadata=metadata, id=f"re_{len(str(metadata))}x"
        )
        assert web.webhook(event).status_code == 200
    assert web.drain() == 3
    assert conn.execute("SELECT count(*), count(request_id) FROM refunds").fetchone() == (3, 0)
    assert conn.execute("SELECT status, stripe_refund_id FROM refund_requests").fetchone() == ("pending", None)
    assert conn.execute("SELECT count(*) FROM stripe_events WHERE status = 'processed'").fetchone() == (3,)


def test_connected_account_events_keep_their_account(web: LiveServer, conn) -> None:
    event = fixture_json("stripe/event_charge.refunded__stripe-ruby-mock.json")
    event["account"] = "acct_1Connected"
    web.webhook(event)
    web.drain()
    row = conn.execute("SELECT account FROM payments WHERE charge_id = %s", (event["data"]["object"]["id"],))
    assert row.fetchone() == ("acct_1Connected",)
    assert conn.execute("SELECT account FROM stripe_events").fetchone() == ("acct_1Connected",)
