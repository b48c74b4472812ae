"""A cheap check in front of Bolt for POST /slack/events: Slack's signature first, then the body's shape.

Bolt parses the body before it verifies the signature, so an unsigned `payload={bad` used to reach
a 500 and a traceback. Here nothing is parsed until the signature holds, and a signed body Bolt
could not read is answered 400 with a reason instead of an exception.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from flask import Request, Response, jsonify
from slack_bolt import App
from slack_bolt.adapter.flask.handler import to_flask_response
from slack_bolt.request import BoltRequest
from slack_sdk.signature import SignatureVerifier

log = logging.getLogger(__name__)

MAX_SKEW_SECONDS = 300  # Slack's own replay window, both ways (what SignatureVerifier allows too)
_MAX_TIMESTAMP_DIGITS = 12  # a Unix time in seconds; also keeps int() away from huge digit strings


@dataclass(frozen=True)
class Refusal:
    """A request to /slack/events that is answered before Bolt sees it."""

    status: int
    reason: str

    def response(self) -> Response:
        """The JSON answer, shaped like the app's other errors."""
        resp = jsonify(error="Unauthorized" if self.status == 401 else "Bad Request", reason=self.reason)
        resp.status_code = self.status
        return resp


def check_signature(
    verifier: SignatureVerifier, body: str, timestamp: str | None, signature: str | None, now: float
) -> Refusal | None:
    """Refuse (401) a request Slack did not sign in the last five minutes; None when it did."""
    if not timestamp:
        return Refusal(401, "missing X-Slack-Request-Timestamp")
    # isascii: str.isdigit() also accepts digits int() refuses, such as "²".
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= _MAX_TIMESTAMP_DIGITS):
        return Refusal(401, "X-Slack-Request-Timestamp is not a Unix time in seconds")
    if abs(now - int(timestamp)) > MAX_SKEW_SECONDS:
        return Refusal(401, "X-Slack-Request-Timestamp is more than 5 minutes away from now")
    if not signature:
        return Refusal(401, "missing X-Slack-Signature")
    # hmac.compare_digest raises TypeError on non-ASCII text, which a forged header may carry.
    if not signature.isascii() or not verifier.is_valid(body, timestamp, signature):
        return Refusal(401, "X-Slack-Signature does not match the body")
    return None


def _is_object_list(value: Any, key: str) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(item, dict) and isinstance(item.get(key), str) for item in value)
    )


# What Bolt's listener matching indexes without checking, by payload type: Slack always sends these
# shapes, and anything else raises inside Bolt's own error handler, which then answers 500.
_SHAPES: dict[str, tuple[str, Callable[[Any], bool], str]] = {
    "block_actions": (
        "actions",
        lambda v: _is_object_list(v, "action_id"),
        "a non-empty list of objects with an action_id",
    ),
    "event_callback": (
        "event",
        lambda v: isinstance(v, dict) and isinstance(v.get("type"), str),
        "an object with a string type",
    ),
    "view_submission": ("view", lambda v: isinstance(v, dict), "an object"),
    "view_closed": ("view", lambda v: isinstance(v, dict), "an object"),
}


def _json_object_with_type(text: str, what: str) -> Refusal | None:
    try:
        value: Any = json.loads(text)
    except RecursionError:
        return Refusal(400, f"{what} is nested too deeply")
    except ValueError:
        return Refusal(400, f"{what} is not valid JSON")
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        return Refusal(400, f'{what} is not a JSON object with a string "type"')
    if value["type"] in _SHAPES:
        key, fits, shape = _SHAPES[value["type"]]
        if not fits(value.get(key)):
            return Refusal(400, f'{value["type"]} {what}: "{key}" should be {shape}')
    return None


def check_shape(body: str, content_type: str | None) -> Refusal | None:
    """Refuse (400) a signed body that is not a slash command, an interaction payload or an Events API event."""
    # The same branches as Bolt's parse_body, so what passes here is what Bolt parses.
    if (content_type or "").split(";")[0] == "application/json" or body.startswith("{"):
        return _json_object_with_type(body, "JSON body")
    fields = dict(parse_qsl(body, keep_blank_values=True))
    if "payload" in fields:
        return _json_object_with_type(fields["payload"], "payload")
    if fields.get("command", "").startswith("/") or fields.get("ssl_check") == "1":
        return None
    return Refusal(400, "body is neither a slash command, an interaction payload nor an Events API event")


class SlackGuard:
    """Checks every request to /slack/events, then hands the ones that pass to Bolt."""

    def __init__(self, bolt: App, signing_secret: str) -> None:
        self._bolt = bolt
        self._verifier = SignatureVerifier(signing_secret)

    def refusal(self, body: str, headers: Mapping[str, str]) -> Refusal | None:
        """Why a request with this body and these headers must not reach Bolt, or None."""
        refused = check_signature(
            self._verifier,
            body,
            headers.get("X-Slack-Request-Timestamp"),
            headers.get("X-Slack-Signature"),
            time.time(),
        )
        if refused:
            log.info("refused an unsigned Slack request: %s", refused.reason)
            return refused
        refused = check_shape(body, headers.get("Content-Type"))
        if refused:
            log.warning("refused a signed Slack request Bolt cannot read: %s", refused.reason)
        return refused

    def handle(self, request: Request) -> Response:
        """Answer a POST to /slack/events: a refusal, or Bolt's response."""
        # The same text Bolt's Flask adapter passes (invalid UTF-8 replaced), so both verify the same thing.
        body = request.get_data(as_text=True)
        refused = self.refusal(body, request.headers)
        if refused:
            return refused.response()
        if "payload" in body and not body.startswith(("payload=", "{")) and "&payload=" not in body:
            # Bolt reads any form body containing the text "payload" as an interaction payload and drops
            # it (a note saying "payload" made /refunds answer 404). %70 decodes to the same "p", so every
            # field keeps its value; Bolt's own signature check is off because this guard made it.
            body = body.replace("payload", "%70ayload")
        try:
            bolt_request = BoltRequest(
                body=body, headers=request.headers, query=request.query_string.decode("utf-8", "replace")
            )
        except (ValueError, TypeError, AttributeError, KeyError, IndexError, RecursionError) as exc:
            # Bolt reads team, user and channel ids while building the request, before any listener:
            # a signed body whose fields have the wrong types fails here, and that is a bad request.
            log.warning("refused a signed Slack request Bolt cannot read: %s: %s", type(exc).__name__, exc)
            return Refusal(400, "Bolt cannot read this body").response()
        return to_flask_response(self._bolt.dispatch(bolt_request))
