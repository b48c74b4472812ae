"""The Slack stand-in's conversations.history and conversations.replies, and message metadata, driven by
the real slack_sdk client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from standins.slack_api import SlackStandIn

TOKEN = "xoxb-standin"  # noqa: S105 - the stand-in's fake token
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "slack"
# Slack's own example of a message with metadata (tests/fixtures/slack/SOURCES.md).
WITH_METADATA = json.loads(
    (FIXTURES / "web_api__chat.postMessage__request_with_metadata__slack_docs_example.json").read_text()
)


@pytest.fixture
def standin() -> Iterator[SlackStandIn]:
    with SlackStandIn() as s:
        yield s


def client(s: SlackStandIn) -> WebClient:
    return WebClient(token=TOKEN, base_url=s.api_url, timeout=2)


def _error(exc: pytest.ExceptionInfo[SlackApiError]) -> str | None:
    return exc.value.response.get("error")


def test_metadata_is_stored_and_shown_only_when_asked_for(standin: SlackStandIn) -> None:
    c = client(standin)
    posted = c.chat_postMessage(channel="C0TEAM", text=WITH_METADATA["text"], metadata=WITH_METADATA["metadata"])
    plain = c.conversations_history(channel="C0TEAM")
    full = c.conversations_history(channel="C0TEAM", include_all_metadata=True)
    assert [m["ts"] for m in plain["messages"]] == [posted["ts"]]
    assert "metadata" not in plain["messages"][0]
    assert full["messages"][0]["metadata"] == WITH_METADATA["metadata"]
    assert full["has_more"] is False and "response_metadata" not in full.data


@pytest.mark.parametrize(
    "metadata",
    [{"event_payload": {}}, {"event_type": "", "event_payload": {}}, {"event_type": "x"}, ["x"], "not json"],
)
def test_malformed_metadata_is_refused(standin: SlackStandIn, metadata) -> None:
    with pytest.raises(SlackApiError) as caught:
        client(standin).api_call("chat.postMessage", json={"channel": "C0TEAM", "text": "x", "metadata": metadata})
    assert _error(caught) == "invalid_metadata_format"
    assert standin.messages == {}


def test_history_is_newest_first_paged_and_bounded(standin: SlackStandIn) -> None:
    c = client(standin)
    stamps = [c.chat_postMessage(channel="C0TEAM", text=f"m{i}")["ts"] for i in range(7)]
    c.chat_postMessage(channel="C0TEAM", text="a reply", thread_ts=stamps[0])  # replies are not history
    c.chat_postMessage(channel="C0TEAM", text="told the channel too", thread_ts=stamps[0], reply_broadcast=True)
    first = c.conversations_history(channel="C0TEAM", limit=3)
    assert [m["text"] for m in first["messages"]] == ["told the channel too", "m6", "m5"]
    assert first["has_more"] is True
    second = c.conversations_history(channel="C0TEAM", limit=3, cursor=first["response_metadata"]["next_cursor"])
    assert [m["text"] for m in second["messages"]] == ["m4", "m3", "m2"]
    window = c.conversations_history(channel="C0TEAM", oldest=stamps[1], latest=stamps[4])
    assert [m["text"] for m in window["messages"]] == ["m3", "m2"]  # both bounds exclusive
    inclusive = c.conversations_history(channel="C0TEAM", oldest=stamps[1], latest=stamps[4], inclusive=True)
    assert [m["text"] for m in inclusive["messages"]] == ["m4", "m3", "m2", "m1"]


def test_replies_are_the_parent_then_its_thread_oldest_first(standin: SlackStandIn) -> None:
    c = client(standin)
    parent = c.chat_postMessage(channel="C0TEAM", text="parent")["ts"]
    c.chat_postMessage(channel="C0TEAM", text="elsewhere")
    for i in range(3):
        c.chat_postMessage(
            channel="C0TEAM", text=f"r{i}", thread_ts=parent, metadata={"event_type": "t", "event_payload": {"i": i}}
        )
    page = c.conversations_replies(channel="C0TEAM", ts=parent, limit=3, include_all_metadata=True)
    assert [m["text"] for m in page["messages"]] == ["parent", "r0", "r1"]
    assert page["messages"][1]["metadata"] == {"event_type": "t", "event_payload": {"i": 0}}
    rest = c.conversations_replies(channel="C0TEAM", ts=parent, cursor=page["response_metadata"]["next_cursor"])
    assert [m["text"] for m in rest["messages"]] == ["r2"] and rest["has_more"] is False
    with pytest.raises(SlackApiError) as caught:
        c.conversations_replies(channel="C0TEAM", ts="1.000001")
    assert _error(caught) == "thread_not_found"


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ({"channel": "C0NOWHERE"}, "channel_not_found"),
        ({"channel": "U0SOMEONE"}, "channel_not_found"),  # a user id is not a conversation
        ({"channel": "C0TEAM", "cursor": "not-a-cursor"}, "invalid_cursor"),
        ({"channel": "C0TEAM", "oldest": "yesterday"}, "invalid_ts_oldest"),
        ({"channel": "C0TEAM", "latest": "soon"}, "invalid_ts_latest"),
    ],
)
def test_history_errors(args: dict, error: str) -> None:
    with SlackStandIn(channels=["C0TEAM"]) as s:
        with pytest.raises(SlackApiError) as caught:
            client(s).conversations_history(**args)
        assert _error(caught) == error


def test_reading_needs_the_history_scope_of_the_channel_kind() -> None:
    with SlackStandIn(scopes=("chat:write", "channels:history")) as s:
        c = client(s)
        c.conversations_history(channel="C0PUBLIC")
        with pytest.raises(SlackApiError) as caught:
            c.conversations_history(channel="G0PRIVATE")
        assert caught.value.response.data == {
            "ok": False,
            "error": "missing_scope",
            "needed": "groups:history",
            "provided": "chat:write,channels:history",
        }


def test_history_answers_faults_like_any_method(standin: SlackStandIn) -> None:
    standin.fail_next("conversations.history", kind="ratelimited", retry_after=7)
    with pytest.raises(SlackApiError) as caught:
        client(standin).conversations_history(channel="C0TEAM")
    assert caught.value.response.status_code == 429 and caught.value.response.headers["Retry-After"] == "7"
