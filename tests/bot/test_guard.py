"""The check in front of Bolt (bot/guard.py): unsigned bodies get 401, signed but unreadable ones 400, never a 500."""

from __future__ import annotations

import json
import logging
import time
from urllib.parse import quote, urlencode

import pytest
import requests
from conftest import LiveServer
from support import FIXTURES

from bot.guard import check_shape
from standins.signing import interaction_body, slack_headers

DEPTH = 5_000  # deeper than Python's recursion limit, which json.loads hits first

# Bodies the red team sent: malformed interaction payloads, JSON that is not an object, deep nesting.
MALFORMED = {
    "payload_not_json": "payload={bad",
    "payload_null": "payload=null",
    "payload_list": "payload=[]",
    "payload_string": "payload=%22block_actions%22",
    "payload_without_type": "payload=" + quote(json.dumps({"actions": []})),
    "payload_type_not_string": "payload=" + quote(json.dumps({"type": 5})),
    "payload_empty": "payload=",
    "json_list": json.dumps([{"type": "event_callback"}]),
    "json_list_as_form": "x=1&" + json.dumps([{"type": "event_callback"}]),
    "json_null_type": json.dumps({"type": None, "event": {}}),
    "json_broken": '{"type": "event_callback"',
    "form_neither_command_nor_payload": "text=help&user_id=U0SUPPORT1",
    "empty_body": "",
    "command_not_a_command": "command=refunds&text=help",
    # Shapes Bolt's listener matching indexes without checking (it then fails inside its own error handler).
    "click_without_actions": "payload=" + quote(json.dumps({"type": "block_actions", "actions": []})),
    "click_actions_null": "payload=" + quote(json.dumps({"type": "block_actions", "actions": None})),
    "click_action_null": "payload=" + quote(json.dumps({"type": "block_actions", "actions": [None]})),
    "click_action_without_id": "payload=" + quote(json.dumps({"type": "block_actions", "actions": [{"value": "1"}]})),
    "event_not_an_object": json.dumps({"type": "event_callback", "event": ["type"]}),
    "event_missing": json.dumps({"type": "event_callback"}),
    "view_not_an_object": "payload=" + quote(json.dumps({"type": "view_submission", "view": "callback_id"})),
}
# Ten deeply nested bodies: arrays, objects and mixes, in a payload field and as a raw JSON body.
DEEP = {
    "deep_array_payload": "payload=" + "[" * DEPTH + "]" * DEPTH,
    "deep_object_payload": "payload=" + quote('{"a":' * DEPTH + "1" + "}" * DEPTH),
    "deep_array_json": "[" * DEPTH + "]" * DEPTH,
    "deep_object_json": '{"a":' * DEPTH + "1" + "}" * DEPTH,
    "deep_in_type_object_json": '{"type":"event_callback","event":' + "[" * DEPTH + "]" * DEPTH + "}",
    "deep_in_type_object_payload": "payload=" + quote('{"type":"block_actions","x":' + "[" * DEPTH + "]" * DEPTH + "}"),
    "deep_mixed_json": '{"a":[' * (DEPTH // 2) + "0" + "]}" * (DEPTH // 2),
    "deep_unclosed_json": "[" * DEPTH,
    "deep_unclosed_payload": "payload=" + "[" * DEPTH,
    "deep_command_and_payload": "command=%2Frefunds&payload=" + "[" * DEPTH + "]" * DEPTH,
}
ALL_BAD = {**MALFORMED, **DEEP}


def _post(web: LiveServer, body: str, headers: dict[str, str]) -> requests.Response:
    if body.startswith(("[", "{")):  # sent as Slack sends Events API bodies, so Bolt would read them as JSON
        headers = {**headers, "Content-Type": "application/json"}
    return web.http.post(f"{web.url}/slack/events", data=body.encode(), headers=headers, timeout=10)


def _no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    noisy = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert noisy == [], [r.getMessage() for r in noisy]


def _unsigned_headers(body: str, how: str) -> dict[str, str]:
    now = int(time.time())
    good = slack_headers(body, "not-the-signing-secret", timestamp=now)
    return {
        "no_headers": {"Content-Type": "application/x-www-form-urlencoded"},
        "wrong_secret": good,
        "garbage_signature": {**good, "X-Slack-Signature": "v0=é-not-hex"},
        "timestamp_empty": {**good, "X-Slack-Request-Timestamp": ""},
        "timestamp_words": {**good, "X-Slack-Request-Timestamp": "yesterday"},
        "timestamp_float": {**good, "X-Slack-Request-Timestamp": f"{now}.5"},
        "timestamp_negative": {**good, "X-Slack-Request-Timestamp": f"-{now}"},
        "timestamp_superscript": {**good, "X-Slack-Request-Timestamp": "²"},
        "timestamp_huge": {**good, "X-Slack-Request-Timestamp": "9" * 5000},
        "timestamp_stale": slack_headers(body, "not-the-signing-secret", timestamp=now - 3600),
    }[how]


UNSIGNED_WAYS = [
    "no_headers",
    "wrong_secret",
    "garbage_signature",
    "timestamp_empty",
    "timestamp_words",
    "timestamp_float",
    "timestamp_negative",
    "timestamp_superscript",
    "timestamp_huge",
    "timestamp_stale",
]


@pytest.mark.parametrize("how", UNSIGNED_WAYS)
def test_unsigned_bodies_are_refused_before_anything_parses_them(web: LiveServer, stripe_api, caplog, how: str) -> None:
    caplog.set_level(logging.INFO)
    for name, body in ALL_BAD.items():
        resp = _post(web, body, _unsigned_headers(body, how))
        assert resp.status_code == 401, (name, resp.status_code, resp.text[:200])
        assert resp.json()["reason"] and "Traceback" not in resp.text, name
    _no_errors_logged(caplog)
    assert stripe_api.requests == [] and web.slack.calls == []


@pytest.mark.parametrize("name", sorted(ALL_BAD))
def test_signed_but_malformed_bodies_get_400_with_a_reason(web: LiveServer, caplog, name: str) -> None:
    body = ALL_BAD[name]
    resp = _post(web, body, slack_headers(body, web.settings.slack_signing_secret))
    assert resp.status_code == 400, resp.text[:300]
    assert resp.json()["error"] == "Bad Request" and resp.json()["reason"]
    _no_errors_logged(caplog)


@pytest.mark.parametrize(
    "payload",
    [
        {"type": "block_actions", "team": 5, "actions": []},  # Bolt reads team ids while building its request
        {"type": "event_callback", "is_ext_shared_channel": True, "event": "not-an-object"},
    ],
)
def test_signed_payloads_bolt_cannot_read_get_400_not_500(web: LiveServer, caplog, payload: dict) -> None:
    for body in (interaction_body(payload), json.dumps(payload)):
        resp = _post(web, body, slack_headers(body, web.settings.slack_signing_secret))
        assert resp.status_code == 400 and resp.json()["reason"], resp.text[:300]
    _no_errors_logged(caplog)


@pytest.mark.parametrize("seconds", [301, 3600, 10 * 365 * 86400])
def test_timestamps_from_the_future_are_refused(web: LiveServer, caplog, seconds: int) -> None:
    body = "command=%2Frefunds&text=help&user_id=U0SUPPORT1"
    ahead = int(time.time()) + seconds
    resp = _post(web, body, slack_headers(body, web.settings.slack_signing_secret, timestamp=ahead))
    assert resp.status_code == 401 and "5 minutes" in resp.json()["reason"]
    _no_errors_logged(caplog)


def test_a_signed_slash_command_still_works(web: LiveServer, caplog) -> None:
    resp, _ = web.slash("help")
    assert resp.status_code == 200
    assert resp.json()["response_type"] == "ephemeral"
    _no_errors_logged(caplog)


def test_a_signed_url_verification_is_answered_with_its_challenge(web: LiveServer) -> None:
    body = (FIXTURES / "slack/event__url_verification__slack_docs_example__java_sdk_test.json").read_text()
    resp = _post(web, body, slack_headers(body, web.settings.slack_signing_secret))
    assert resp.status_code == 200
    assert json.loads(body)["challenge"] in resp.text


def test_slacks_ssl_check_passes_when_signed_only(web: LiveServer) -> None:
    body = urlencode({"ssl_check": "1", "token": "gIkuvaNzQIHg97ATvDxqgjtO"})
    assert _post(web, body, slack_headers(body, web.settings.slack_signing_secret)).status_code == 200
    assert _post(web, body, {"Content-Type": "application/x-www-form-urlencoded"}).status_code == 401


REAL = sorted(
    p.name
    for p in (FIXTURES / "slack").iterdir()
    if p.name.startswith(("block_actions__", "event__", "message_action__", "shortcut__", "view_submission__"))
    and p.suffix == ".json"
    or p.name.startswith("slash_command__")
    and p.suffix == ".form"
)


@pytest.mark.parametrize("name", REAL)
def test_every_real_slack_body_passes_the_shape_check(name: str) -> None:
    text = (FIXTURES / "slack" / name).read_text().strip()
    if name.endswith(".form"):
        assert check_shape(text, "application/x-www-form-urlencoded") is None
    elif name.startswith("event__"):
        assert check_shape(text, "application/json; charset=utf-8") is None
    else:
        assert check_shape(interaction_body(json.loads(text)), "application/x-www-form-urlencoded") is None
