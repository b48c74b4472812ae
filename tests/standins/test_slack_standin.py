"""Tests for the Slack Web API stand-in, driven by the real slack_sdk clients."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.error import URLError

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.webhook import WebhookClient

from standins.slack_api import SlackCall, SlackStandIn

TOKEN = "xoxb-standin"  # noqa: S105 - the stand-in's fake token
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "slack"
TS = re.compile(r"^\d{10}\.\d{6}$")


def fixture(name: str) -> dict:
    """Load one real Slack payload from tests/fixtures/slack."""
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def standin() -> Iterator[SlackStandIn]:
    """A stand-in with two known channels and one user group."""
    with SlackStandIn(channels=["C111", "C222"], usergroups={"S123": ["U1", "U2"]}) as s:
        yield s


def client(s: SlackStandIn, **kwargs) -> WebClient:
    """The real WebClient pointed at the stand-in."""
    kwargs.setdefault("timeout", 2)
    return WebClient(token=TOKEN, base_url=s.api_url, **kwargs)


def error_of(exc: pytest.ExceptionInfo[SlackApiError]) -> str | None:
    """The Slack error code carried by a SlackApiError."""
    return exc.value.response.get("error")


# --------------------------------------------------------------------------- shapes


def test_auth_test_matches_fixture_shape(standin: SlackStandIn) -> None:
    resp = client(standin).auth_test()
    assert set(resp.data) == set(fixture("web_api__auth.test__success__real_log_python_sdk_tutorial.json"))
    assert resp["user_id"] == "U0BOT" and resp["team_id"] == "T0STANDIN"
    assert resp.headers.get("x-oauth-scopes")


def test_post_message_matches_fixture_and_is_stored(standin: SlackStandIn) -> None:
    c = client(standin)
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]
    first = c.chat_postMessage(channel="C111", text="hello", blocks=blocks)
    second = c.chat_postMessage(channel="C111", text="again")
    expected = fixture("web_api__chat.postMessage__success__slack_docs_example.json")
    assert set(first.data) == set(expected)
    assert {"bot_id", "text", "ts", "type"} <= set(first["message"])
    assert TS.match(first["ts"]) and TS.match(second["ts"])
    assert float(second["ts"]) > float(first["ts"])
    assert first["message"]["blocks"] == blocks
    stored = standin.messages["C111"]
    assert [m["text"] for m in stored] == ["hello", "again"]
    assert stored[0]["ts"] == first["ts"] and stored[0]["user"] == "U0BOT"
    call = standin.calls_to("chat.postMessage")[0]
    assert call.args["blocks"] == blocks and call.status == 200
    assert call.headers["authorization"] == f"Bearer {TOKEN}"


def test_form_encoded_blocks_are_decoded_and_token_field_accepted(standin: SlackStandIn) -> None:
    blocks = [{"type": "divider"}]
    resp = WebClient(base_url=standin.api_url, timeout=2).api_call(
        "chat.postMessage",
        params={"token": TOKEN, "channel": "C222", "blocks": json.dumps(blocks)},
    )
    assert resp["ok"] and resp["message"]["text"] == "This content can't be displayed."
    assert standin.calls_to("chat.postMessage")[0].args["blocks"] == blocks


def test_update_matches_fixture_and_changes_stored_message(standin: SlackStandIn) -> None:
    c = client(standin)
    posted = c.chat_postMessage(channel="C111", text="Refund pending")
    updated = c.chat_update(channel="C111", ts=posted["ts"], text="Refund approved")
    assert set(updated.data) == set(fixture("web_api__chat.update__success__slack_docs_example.json"))
    assert updated["ts"] == posted["ts"] and updated["text"] == "Refund approved"
    assert standin.messages["C111"][0]["text"] == "Refund approved"
    with pytest.raises(SlackApiError) as exc:
        c.chat_update(channel="C111", ts="1.000001", text="x")
    assert error_of(exc) == "message_not_found"


def test_ephemeral_and_views(standin: SlackStandIn) -> None:
    c = client(standin)
    eph = c.chat_postEphemeral(channel="C111", user="U1", text="only you")
    assert set(eph.data) == {"ok", "message_ts"} and TS.match(eph["message_ts"])
    view = {"type": "modal", "callback_id": "refund", "title": {"type": "plain_text", "text": "R"}}
    opened = c.views_open(trigger_id="111.222.valid", view=view)
    expected = fixture("web_api__views.open__success__slack_docs_example.json")
    assert set(opened.data) == set(expected)
    assert set(expected["view"]) <= set(opened["view"])
    assert opened["view"]["id"].startswith("V") and opened["view"]["callback_id"] == "refund"
    updated = c.views_update(view_id=opened["view"]["id"], view={**view, "callback_id": "v2"})
    assert updated["view"]["id"] == opened["view"]["id"]
    assert standin.views[opened["view"]["id"]]["callback_id"] == "v2"
    assert c.views_publish(user_id="U1", view={"type": "home", "blocks": []})["ok"]
    with pytest.raises(SlackApiError) as exc:
        c.api_call("views.open", json={"trigger_id": "111.222.valid"})
    bad = fixture("web_api__views.open__error_invalid_arguments__slack_docs_example.json")
    assert set(exc.value.response.data) == set(bad)
    assert error_of(exc) == "invalid_arguments"


def test_usergroups_conversations_users(standin: SlackStandIn) -> None:
    c = client(standin)
    resp = c.usergroups_users_list(usergroup="S123")
    expected = fixture("web_api__usergroups.users.list__success__slack_docs_example.json")
    assert set(resp.data) == set(expected) and resp["users"] == ["U1", "U2"]
    with pytest.raises(SlackApiError) as exc:
        c.usergroups_users_list(usergroup="S999")
    assert error_of(exc) == "no_such_subteam"
    assert c.conversations_info(channel="C111")["channel"]["id"] == "C111"
    assert c.users_info(user="U1")["user"]["profile"]["email"] == "u1@example.com"


# --------------------------------------------------------------------------- API errors


def test_auth_errors(standin: SlackStandIn) -> None:
    with pytest.raises(SlackApiError) as exc:
        WebClient(
            token="xoxb-wrong",  # noqa: S106
            base_url=standin.api_url,
            timeout=2,
        ).auth_test()
    assert exc.value.response.status_code == 200
    assert exc.value.response.data == fixture("web_api__error_invalid_auth__bolt_python_mock.json")
    with pytest.raises(SlackApiError) as exc:
        WebClient(base_url=standin.api_url, timeout=2).auth_test()
    assert error_of(exc) == "not_authed"


def test_channel_not_found_and_unknown_method(standin: SlackStandIn) -> None:
    c = client(standin)
    with pytest.raises(SlackApiError) as exc:
        c.chat_postMessage(channel="C999", text="x")
    assert exc.value.response.data == fixture("web_api__error_channel_not_found__bolt_js_test.json")
    with pytest.raises(SlackApiError) as exc:
        c.api_call("chat.nope")
    assert error_of(exc) == "unknown_method"
    standin.add_channel("C999")
    assert c.chat_postMessage(channel="C999", text="x")["ok"]


def test_every_channel_exists_without_a_channel_list() -> None:
    with SlackStandIn() as s:
        assert client(s).chat_postMessage(channel="CANY", text="x")["ok"]


def test_thread_reply_needs_its_parent(standin: SlackStandIn) -> None:
    c = client(standin)
    with pytest.raises(SlackApiError) as exc:
        c.chat_postMessage(channel="C111", text="reply", thread_ts="1700000000.000100")
    assert error_of(exc) == "thread_not_found"
    parent = c.chat_postMessage(channel="C111", text="parent")
    reply = c.chat_postMessage(channel="C111", text="reply", thread_ts=parent["ts"])
    assert reply["message"]["thread_ts"] == parent["ts"]
    with pytest.raises(SlackApiError) as exc:  # the parent lives in another channel
        c.chat_postMessage(channel="C222", text="reply", thread_ts=parent["ts"])
    assert error_of(exc) == "thread_not_found"
    stored_parent = standin.messages["C111"][0]
    assert stored_parent["reply_count"] == 1 and stored_parent["latest_reply"] == reply["ts"]
    assert [c.error for c in standin.calls_to("chat.postMessage")] == [
        "thread_not_found",
        None,
        None,
        "thread_not_found",
    ]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({}, "no_text"),
        ({"text": "x" * 40_001}, "msg_too_long"),
        ({"blocks": [{"text": "no type"}]}, "invalid_blocks"),
        ({"blocks": [{"type": "divider"}] * 51}, "invalid_blocks"),
    ],
)
def test_post_message_validation(standin: SlackStandIn, kwargs: dict, error: str) -> None:
    # api_call skips slack_sdk's client-side "missing text" warning; we test the server.
    with pytest.raises(SlackApiError) as exc:
        client(standin).api_call("chat.postMessage", json={"channel": "C111", **kwargs})
    assert error_of(exc) == error
    assert standin.messages == {}


# --------------------------------------------------------------------------- faults


def test_ratelimited_fault_is_a_429_with_retry_after(standin: SlackStandIn) -> None:
    standin.fail_next("chat.postMessage", kind="ratelimited", retry_after=7)
    c = client(standin)
    with pytest.raises(SlackApiError) as exc:
        c.chat_postMessage(channel="C111", text="x")
    assert exc.value.response.status_code == 429
    assert exc.value.response.headers["Retry-After"] == "7"
    assert exc.value.response.data == fixture("web_api__error_ratelimited_429__python_sdk_mock.json")
    assert c.chat_postMessage(channel="C111", text="x")["ok"]  # only the next call failed
    assert [call.status for call in standin.calls] == [429, 200]


def test_rate_limit_retry_handler_retries_through_429(standin: SlackStandIn) -> None:
    standin.fail_next("chat.postMessage", kind="ratelimited", retry_after=0)
    c = client(standin, retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)])
    assert c.chat_postMessage(channel="C111", text="x")["ok"]
    assert [call.status for call in standin.calls_to("chat.postMessage")] == [429, 200]
    assert len(standin.messages["C111"]) == 1


@pytest.mark.parametrize(("kind", "status"), [("server_error", 500), ("unavailable", 503)])
def test_server_errors(standin: SlackStandIn, kind: str, status: int) -> None:
    standin.fail_next("*", kind=kind)
    with pytest.raises(SlackApiError) as exc:
        client(standin).auth_test()
    assert exc.value.response.status_code == status


def test_error_fault_and_wildcard_counts(standin: SlackStandIn) -> None:
    standin.fail_next("chat.postMessage", 2, kind="error", error="not_in_channel")
    c = client(standin)
    for _ in range(2):
        with pytest.raises(SlackApiError) as exc:
            c.chat_postMessage(channel="C111", text="x")
        assert exc.value.response.status_code == 200 and error_of(exc) == "not_in_channel"
    assert c.chat_postMessage(channel="C111", text="x")["ok"]
    with pytest.raises(ValueError, match="kind"):
        standin.fail_next("chat.postMessage", error="channel_not_found")


def test_timeout_fault_times_the_client_out_and_stop_is_prompt() -> None:
    s = SlackStandIn().start()
    try:
        s.fail_next("chat.postMessage", kind="timeout")  # default 30 s delay
        c = WebClient(token=TOKEN, base_url=s.api_url, timeout=0.5, retry_handlers=[])
        started = time.monotonic()
        with pytest.raises((TimeoutError, URLError)):
            c.chat_postMessage(channel="C1", text="slow")
        assert time.monotonic() - started < 2
        # Slack processed it even though the client never heard back.
        assert [m["text"] for m in s.messages["C1"]] == ["slow"]
    finally:
        stopping = time.monotonic()
        s.stop()
    assert time.monotonic() - stopping < 2


def test_per_channel_rate_limit_bursts_then_429s() -> None:
    with SlackStandIn(per_channel_rate=1.0) as s:
        c = client(s)
        statuses = []
        for _ in range(10):
            try:
                c.chat_postMessage(channel="C1", text="burst")
                statuses.append(200)
            except SlackApiError as e:
                statuses.append(e.response.status_code)
                assert int(e.response.headers["Retry-After"]) >= 1
        assert statuses[0] == 200 and statuses.count(429) >= 5
        assert c.chat_postMessage(channel="C2", text="other channel")["ok"]


def test_latency_is_added() -> None:
    with SlackStandIn() as s:
        s.latency = 0.2
        started = time.monotonic()
        client(s).auth_test()
        assert time.monotonic() - started >= 0.2


# --------------------------------------------------------------------------- response_url


def test_response_url_posts_recorded_and_sixth_rejected(standin: SlackStandIn) -> None:
    url = standin.response_url("cmd-1")
    hook = WebhookClient(url, timeout=2)
    for i in range(5):
        resp = hook.send(text=f"reply {i}", response_type="ephemeral")
        assert (resp.status_code, resp.body) == (200, "ok")
    sixth = hook.send(text="one too many")
    assert sixth.status_code == 404 and json.loads(sixth.body)["error"] == "used_url"
    assert [r["text"] for r in standin.responses("cmd-1")] == [f"reply {i}" for i in range(5)]
    calls = standin.calls_to("response_url")
    assert [c.status for c in calls] == [200] * 5 + [404]
    assert all(c.key == "cmd-1" for c in calls)


def test_unknown_response_url_key_still_accepts(standin: SlackStandIn) -> None:
    resp = WebhookClient(f"{standin.url}/actions/T0STANDIN/never-issued", timeout=2).send(text="hi")
    assert resp.status_code == 200
    assert standin.responses("never-issued") == [{"text": "hi"}]


def test_response_url_linked_to_message_replaces_and_posts(standin: SlackStandIn) -> None:
    posted = client(standin).chat_postMessage(channel="C111", text="Approve refund?")
    url = standin.response_url(channel="C111", message_ts=posted["ts"])
    hook = WebhookClient(url, timeout=2)
    assert hook.send(text="Approved by <@U1>", replace_original=True).status_code == 200
    assert hook.send(text="FYI", response_type="in_channel").status_code == 200
    assert [m["text"] for m in standin.messages["C111"]] == ["Approved by <@U1>", "FYI"]


def test_response_url_fault(standin: SlackStandIn) -> None:
    standin.fail_next("response_url", kind="server_error")
    hook = WebhookClient(standin.response_url("k"), timeout=2)
    assert hook.send(text="x").status_code == 500
    assert hook.send(text="x").status_code == 200
    assert len(standin.responses("k")) == 1


# --------------------------------------------------------------------------- helpers


def test_wait_for_sees_calls_from_other_threads_and_times_out(standin: SlackStandIn) -> None:
    c = client(standin)
    worker = threading.Thread(target=lambda: c.chat_postMessage(channel="C111", text="async"))
    worker.start()
    calls = standin.wait_for(lambda cs: any(x.method == "chat.postMessage" for x in cs), timeout=2)
    worker.join()
    assert isinstance(calls[0], SlackCall)
    with pytest.raises(AssertionError, match=r"chat.postMessage->200"):
        standin.wait_for(lambda cs: len(cs) > 5, timeout=0.2)


def test_bolt_app_initialises_against_the_standin(standin: SlackStandIn) -> None:
    from slack_bolt import App

    app = App(
        signing_secret="secret",  # noqa: S106
        client=client(standin),
    )
    assert app.client.base_url == standin.api_url
    assert [c.method for c in standin.calls] == ["auth.test"]


def test_stop_is_idempotent_and_url_requires_start() -> None:
    s = SlackStandIn()
    with pytest.raises(RuntimeError):
        _ = s.api_url
    s.start()
    s.stop()
    s.stop()
