"""The Slack outbox under rate limits and outages, with two workers delivering at once."""

from __future__ import annotations

from collections import Counter

import pytest
from conftest import replace_settings
from support import replies, running_workers, wait_until

from app import build_deps
from standins.slack_api import SlackStandIn
from store import db, outbox

CHANNELS = ["C0FEED1", "C0FEED2", "C0FEED3"]


def _queue(pool, threads_per_channel: int = 2, replies: int = 4) -> list[str]:
    """Queue parents, replies and updates in several channels in one transaction each; return texts in order."""
    texts = []
    for channel in CHANNELS:
        for t in range(threads_per_channel):
            key = f"{channel}:thread{t}"
            with db.transaction(pool) as conn:
                outbox.enqueue(conn, channel=channel, payload={"text": f"{key} parent"}, message_key=key)
                texts.append(f"{key} parent")
                for r in range(replies):
                    outbox.enqueue(conn, channel=channel, payload={"text": f"{key} reply {r}"}, parent_key=key)
                    texts.append(f"{key} reply {r}")
                outbox.enqueue(
                    conn,
                    channel=channel,
                    method="chat.update",
                    payload={"text": f"{key} parent (updated)"},
                    parent_key=key,
                )
    return texts


def _run_two_workers(settings, until, timeout: float = 60.0) -> None:
    with running_workers(settings, count=2):
        wait_until(until, timeout=timeout, what="draining the queue")


def _drained(deps):
    """A check that nothing is left queued."""

    def drained() -> bool:
        with db.connection(deps.pool) as conn:
            return outbox.stats(conn)[0] == 0

    return drained


@pytest.fixture
def fast(settings):
    return replace_settings(settings, slack_channel_pace_seconds=0.0)


def test_every_message_is_delivered_once_and_in_order_after_429s_and_500s(fast, slack: SlackStandIn, db_url) -> None:
    deps = build_deps(fast)
    texts = _queue(deps.pool)
    slack.fail_next("chat.postMessage", 6, kind="ratelimited", retry_after=1)
    slack.fail_next("chat.update", 2, kind="server_error")
    slack.fail_next("*", 3, kind="unavailable")

    _run_two_workers(fast, _drained(deps))
    with db.connection(deps.pool) as conn:
        assert outbox.stats(conn)[:2] == (0, 0)  # nothing queued, nothing dead
    deps.pool.close()

    posted = [c for c in slack.calls_to("chat.postMessage") if c.status == 200 and c.response.get("ok")]
    counts = Counter(c.args["text"] for c in posted)
    assert all(n == 1 for n in counts.values()), [t for t, n in counts.items() if n > 1]
    assert set(counts) == {t for t in texts if "updated" not in t}
    assert not [c for c in slack.calls if c.error == "thread_not_found"]
    for channel in CHANNELS:
        messages = slack.messages[channel]
        for t in range(2):
            key = f"{channel}:thread{t}"
            parent = next(m for m in messages if m["text"].startswith(f"{key} parent"))
            assert parent["text"] == f"{key} parent (updated)"
            assert [m["text"] for m in replies(messages, parent)] == [f"{key} reply {r}" for r in range(4)]


def test_a_message_slack_refuses_is_dead_lettered_and_the_rest_still_go(fast, slack: SlackStandIn) -> None:
    deps = build_deps(fast)
    with db.transaction(deps.pool) as conn:
        outbox.enqueue(conn, channel="C0FEED1", payload={"text": "bad blocks", "blocks": [{"no": "type"}]})
        outbox.enqueue(conn, channel="C0FEED1", payload={"text": "fine"})

    _run_two_workers(fast, _drained(deps))
    with db.connection(deps.pool) as conn:
        queued, dead, _ = outbox.stats(conn)
        error = conn.execute("SELECT last_error FROM slack_outbox WHERE status = 'dead'").fetchone()[0]
    deps.pool.close()
    assert (queued, dead, error) == (0, 1, "invalid_blocks")
    assert [m["text"] for m in slack.messages["C0FEED1"]] == ["fine"]


def test_channel_pace_spaces_messages(settings, slack: SlackStandIn) -> None:
    paced = replace_settings(settings, slack_channel_pace_seconds=0.3)
    deps = build_deps(paced)
    with db.transaction(deps.pool) as conn:
        for i in range(4):
            outbox.enqueue(conn, channel="C0FEED1", payload={"text": f"m{i}"})

    _run_two_workers(paced, _drained(deps))
    deps.pool.close()
    sent = [c.at for c in slack.calls_to("chat.postMessage")]
    gaps = [b - a for a, b in zip(sent, sent[1:], strict=False)]
    assert len(sent) == 4 and min(gaps) >= 0.25  # the pace held between workers too


def test_a_dead_parent_takes_its_replies_with_it_and_the_channel_goes_on(fast, slack: SlackStandIn) -> None:
    deps = build_deps(fast)
    with db.transaction(deps.pool) as conn:
        outbox.enqueue(conn, channel="C0FEED1", payload={"text": "bad", "blocks": [{"no": "type"}]}, message_key="p")
        outbox.enqueue(conn, channel="C0FEED1", payload={"text": "reply"}, parent_key="p")
        outbox.enqueue(conn, channel="C0FEED1", method="chat.update", payload={"text": "update"}, parent_key="p")
        outbox.enqueue(conn, channel="C0FEED1", payload={"text": "unrelated, later"})

    _run_two_workers(fast, _drained(deps))
    with db.connection(deps.pool) as conn:
        dead = conn.execute("SELECT payload->>'text', last_error FROM slack_outbox WHERE status = 'dead' ORDER BY id")
        rows = dead.fetchall()
    deps.pool.close()
    assert [r[0] for r in rows] == ["bad", "reply", "update"]
    assert rows[1][1] == "parent message dead-lettered: invalid_blocks"
    assert [m["text"] for m in slack.messages["C0FEED1"]] == ["unrelated, later"]


def test_an_outage_longer_than_any_backoff_still_delivers(fast, slack: SlackStandIn) -> None:
    from datetime import timedelta

    from domain.clock import utcnow
    from services.slack_delivery import build_client, deliver_next

    deps = build_deps(fast)
    with db.transaction(deps.pool) as conn:
        outbox.enqueue(conn, channel="C0FEED1", payload={"text": "patience"})
    client = build_client(fast.slack_bot_token, fast.slack_api_url)
    slack.fail_next("chat.postMessage", 40, kind="server_error")
    now = utcnow()
    for _ in range(41):  # 40 failures: hours of outage, each retry when it is due
        assert deliver_next(deps.pool, client, now=now, pace_seconds=0)
        now += timedelta(hours=1)
    with db.connection(deps.pool) as conn:
        assert conn.execute("SELECT status, attempts FROM slack_outbox").fetchone() == ("sent", 41)
    deps.pool.close()
    assert [m["text"] for m in slack.messages["C0FEED1"]] == ["patience"]


def test_a_reply_to_a_message_that_never_existed_or_died_never_blocks_the_channel(fast, slack) -> None:
    deps = build_deps(fast)
    with db.transaction(deps.pool) as conn:
        outbox.enqueue(conn, channel="C0FEED1", payload={"text": "dead", "blocks": [{"no": "type"}]}, message_key="d")
    _run_two_workers(fast, _drained(deps))
    with db.transaction(deps.pool) as conn:
        outbox.enqueue(conn, channel="C0FEED1", payload={"text": "late reply"}, parent_key="d")
        outbox.enqueue(conn, channel="C0FEED1", payload={"text": "to nothing"}, parent_key="never-queued")
        outbox.enqueue(conn, channel="C0FEED1", payload={"text": "still delivered"})
    _run_two_workers(fast, _drained(deps))
    with db.connection(deps.pool) as conn:
        assert outbox.stats(conn)[:2] == (0, 3)
    deps.pool.close()
    assert [m["text"] for m in slack.messages["C0FEED1"]] == ["still delivered"]
