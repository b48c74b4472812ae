"""No Slack message twice: each post carries its outbox key in its metadata; when a post's outcome is
unknown (a timeout, a worker killed while Slack had it), the next attempt looks for it in the channel
and adopts its ts instead of posting again. Urgent channels go before a long feed backlog."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from datetime import timedelta

import psycopg
from conftest import STRIPE_KEY
from support import ROOT, replies, top_level, wait_until

from app import build_deps
from domain.clock import utcnow
from domain.priority import ROUTINE
from services.slack_delivery import METADATA_EVENT, build_client, deliver_next
from standins.slack_api import SlackStandIn
from store import db, outbox

CHANNEL = "C0TEAM"


def _thread(pool, replies_: int = 2) -> None:
    """A parent and its replies, queued together."""
    with db.transaction(pool) as conn:
        outbox.enqueue(conn, channel=CHANNEL, payload={"text": "parent"}, message_key="parent")
        for i in range(replies_):
            outbox.enqueue(conn, channel=CHANNEL, payload={"text": f"reply {i}"}, parent_key="parent")


def _deliver_all(pool, client, now) -> int:
    n = 0
    while deliver_next(pool, client, now=now, pace_seconds=0):
        n += 1
        assert n < 50
    return n


def _posts_of(slack: SlackStandIn, text: str) -> list:
    return [c for c in slack.calls_to("chat.postMessage") if c.args.get("text") == text]


def test_every_post_carries_its_delivery_key(settings, slack: SlackStandIn, conn: psycopg.Connection) -> None:
    deps = build_deps(settings)
    _thread(deps.pool, replies_=1)
    _deliver_all(deps.pool, deps.slack, utcnow())
    deps.pool.close()
    keys = dict(conn.execute("SELECT payload->>'text', delivery_key::text FROM slack_outbox").fetchall())
    for message in slack.messages[CHANNEL]:
        assert message["metadata"] == {
            "event_type": METADATA_EVENT,
            "event_payload": {"outbox_key": keys[message["text"]]},
        }
    assert conn.execute("SELECT count(*) FROM slack_unsure").fetchone() == (0,)  # outcomes known


def test_a_post_slack_accepted_but_answered_too_late_is_found_not_repeated(settings, slack: SlackStandIn) -> None:
    deps = build_deps(settings)
    _thread(deps.pool)
    impatient = build_client(settings.slack_bot_token, settings.slack_api_url, timeout=1)
    slack.fail_next("chat.postMessage", kind="timeout", delay=3)  # stored by Slack, answered after 3 s
    now = utcnow()
    assert deliver_next(deps.pool, impatient, now=now, pace_seconds=0)  # timed out: retried later
    assert [m["text"] for m in slack.messages[CHANNEL]] == ["parent"]

    assert _deliver_all(deps.pool, impatient, now + timedelta(minutes=5)) == 3  # found, then two replies
    deps.pool.close()
    [parent] = top_level(slack.messages[CHANNEL])
    assert parent["text"] == "parent" and len(_posts_of(slack, "parent")) == 1
    assert [r["text"] for r in replies(slack.messages[CHANNEL], parent)] == ["reply 0", "reply 1"]
    assert len(slack.calls_to("conversations.history")) == 1


def test_a_post_that_never_reached_slack_is_posted_after_looking(settings, slack: SlackStandIn) -> None:
    deps = build_deps(settings)
    _thread(deps.pool, replies_=0)
    slack.fail_next("chat.postMessage", kind="server_error")  # a 500: did Slack keep it? unknown
    now = utcnow()
    _deliver_all(deps.pool, deps.slack, now)
    _deliver_all(deps.pool, deps.slack, now + timedelta(minutes=5))
    deps.pool.close()
    assert [m["text"] for m in slack.messages[CHANNEL]] == ["parent"]
    assert len(slack.calls_to("conversations.history")) == 1


def test_a_rate_limited_look_waits_and_posts_nothing_meanwhile(settings, slack: SlackStandIn, conn) -> None:
    deps = build_deps(settings)
    _thread(deps.pool, replies_=0)
    slack.fail_next("chat.postMessage", kind="server_error")
    slack.fail_next("conversations.history", kind="ratelimited", retry_after=30)
    now = utcnow()
    _deliver_all(deps.pool, deps.slack, now)
    assert _deliver_all(deps.pool, deps.slack, now + timedelta(minutes=5)) == 1  # the look was refused
    assert len(_posts_of(slack, "parent")) == 1  # only the first, failed, post
    assert conn.execute("SELECT status, attempts FROM slack_outbox").fetchone() == ("queued", 1)  # a 429 is no attempt
    assert _deliver_all(deps.pool, deps.slack, now + timedelta(minutes=6)) == 1
    deps.pool.close()
    assert [m["text"] for m in slack.messages[CHANNEL]] == ["parent"]


def test_without_the_history_scope_it_posts_again_and_says_so(settings, caplog) -> None:
    caplog.set_level(logging.WARNING)
    with SlackStandIn(scopes=("chat:write", "commands")) as old_install:
        deps = build_deps(settings)
        client = build_client(settings.slack_bot_token, old_install.api_url, timeout=1)
        _thread(deps.pool, replies_=0)
        old_install.fail_next("chat.postMessage", kind="timeout", delay=2)
        now = utcnow()
        _deliver_all(deps.pool, client, now)
        _deliver_all(deps.pool, client, now + timedelta(minutes=5))
        deps.pool.close()
        assert [m["text"] for m in old_install.messages[CHANNEL]] == ["parent", "parent"]  # at least once, as before
    assert "may appear twice" in caplog.text and "missing_scope" in caplog.text


def test_an_alert_is_not_stuck_behind_a_feed_backlog_in_another_channel(settings, slack: SlackStandIn) -> None:
    deps = build_deps(settings)
    with db.transaction(deps.pool) as conn:
        for i in range(300):
            outbox.enqueue(conn, channel="C0REFUNDFEED", payload={"text": f"feed {i}"}, priority=ROUTINE)
        outbox.enqueue(conn, channel="C0DISPUTES", payload={"text": "dispute!"}, message_key="dispute:dp_1")
        outbox.enqueue(conn, channel="C0DISPUTES", payload={"text": "in its thread"}, parent_key="dispute:dp_1")
    now = utcnow()
    for _ in range(3):
        assert deliver_next(deps.pool, deps.slack, now=now, pace_seconds=0)
    deps.pool.close()
    assert [c.args["text"] for c in slack.calls_to("chat.postMessage")] == ["dispute!", "in its thread", "feed 0"]


def test_a_worker_killed_after_slack_accepted_a_post_leaves_one_message_and_its_thread(
    settings, slack: SlackStandIn, db_url: str, conn: psycopg.Connection, tmp_path
) -> None:
    deps = build_deps(settings)
    _thread(deps.pool, replies_=3)
    deps.pool.close()
    slack.fail_next("chat.postMessage", kind="timeout", delay=60)  # accepted, and the answer held back
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "STRIPE_", "DATABASE_URL"))},
        "DATABASE_URL": db_url,
        "SLACK_BOT_TOKEN": settings.slack_bot_token,
        "SLACK_API_URL": slack.api_url,
        "STRIPE_SECRET_KEY": STRIPE_KEY,
        "STRIPE_API_BASE": "http://127.0.0.1:9",
        "SLACK_CHANNEL_PACE_SECONDS": "0",
        "LOG_LEVEL": "WARNING",
    }

    def worker(name: str) -> subprocess.Popen:
        with (tmp_path / f"{name}.log").open("wb") as log:
            return subprocess.Popen([sys.executable, "-m", "cli", "worker"], cwd=ROOT, env=env, stdout=log, stderr=log)

    first = worker("first")
    try:
        wait_until(lambda: slack.messages.get(CHANNEL), timeout=30, what="Slack accepting the parent")
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    conn.rollback()
    assert conn.execute("SELECT status FROM slack_outbox WHERE message_key = 'parent'").fetchone() == ("queued",)
    assert conn.execute("SELECT count(*) FROM slack_unsure").fetchone() == (1,)  # the trace it left

    second = worker("second")
    try:

        def delivered() -> bool:
            conn.rollback()
            return conn.execute("SELECT count(*) FROM slack_outbox WHERE status = 'queued'").fetchone()[0] == 0

        wait_until(delivered, timeout=60, what="the restarted worker delivering the thread")
    finally:
        second.terminate()
        second.wait(20)
    [parent] = top_level(slack.messages[CHANNEL])
    assert parent["text"] == "parent" and len(_posts_of(slack, "parent")) == 1
    assert [r["text"] for r in replies(slack.messages[CHANNEL], parent)] == ["reply 0", "reply 1", "reply 2"]
    assert conn.execute("SELECT slack_ts FROM slack_outbox WHERE message_key = 'parent'").fetchone() == (parent["ts"],)
