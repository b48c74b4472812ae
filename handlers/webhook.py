"""POST /webhooks/stripe: verify, record, dedupe; processing happens in the worker.

The 2xx goes out only after the event is committed to the inbox; a redelivery answers 200 and
is not stored again; the database being down answers 503 so Stripe retries. What could never be
stored or applied (ids no index holds, times no timestamp holds, JSON Postgres refuses) answers
400 with the reason, so one bad event never holds up the others.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

import stripe
from flask import Blueprint, Flask, Response, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import RequestEntityTooLarge

from domain.errors import DatabaseUnavailable, Unstorable
from domain.redact import without_card_data
from services import metrics
from services.deps import Deps
from store import db, events

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
# The two answers Stripe gets, prebuilt: jsonify costs more than the rest of the response.
STORED = b'{"duplicate":false,"received":true}\n'
DUPLICATE = b'{"duplicate":true,"received":true}\n'

# Stripe ids are a prefix, an underscore, letters and digits; the length bound keeps every id far
# below what a btree index entry holds (about 2.7 KB), which would otherwise fail the insert.
MAX_ID = 255
EVENT_ID = re.compile(r"evt_[A-Za-z0-9_]+")
ACCOUNT_ID = re.compile(r"acct_[A-Za-z0-9_]+")
EVENT_TYPE = re.compile(r"[A-Za-z0-9_.\-]+")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# `created` must be a time Postgres and Python both hold and order sanely: Stripe began in 2010,
# and a fixed far bound (2100-01-01) keeps the answer independent of this machine's clock.
EARLIEST = 1_262_304_000
LATEST = 4_102_444_800
# Stripe's events nest about ten deep; far deeper JSON only exhausts parsers (ours and Postgres's).
MAX_DEPTH = 64
BOM = b"\xef\xbb\xbf"
# A JSON \u0000 escape preceded by an odd run of backslashes (an even run is an escaped backslash
# followed by the text "u0000").
NUL_ESCAPE = re.compile(r"(\\+)u0000")


class BadEvent(Exception):
    """The request is not a signed Stripe snapshot event; the message says why (shown as the 400 reason)."""


def verify(payload: bytes, header: str | None, secrets: tuple[str, ...], tolerance: int) -> None:
    """Accept the payload if any configured secret signed it recently; otherwise raise BadEvent."""
    if not header:
        raise BadEvent("missing Stripe-Signature header")
    if not secrets:
        raise BadEvent("no webhook secret is configured")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadEvent("body is not UTF-8 text") from exc
    problems: list[str] = []
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(text, header, secret, tolerance)
        except stripe.SignatureVerificationError as exc:
            problems.append(str(exc))
            continue
        _not_ahead(header, tolerance)
        return
    stale = [p for p in problems if "tolerance" in p]
    reason = stale[0] if stale else problems[0]
    raise BadEvent(f"bad signature: {reason}")


def _not_ahead(header: str, tolerance: int) -> None:
    """Refuse a signature dated beyond the tolerance in the future: stripe-python checks only the past."""
    # The same reading of the header as stripe-python's, which has just accepted it.
    stamps = [part[1] for part in (item.split("=", 2) for item in header.split(",")) if part[0] == "t"]
    ahead = int(stamps[0]) - time.time()
    if ahead > tolerance:
        raise BadEvent(
            f"bad signature: timestamp {int(stamps[0])} is {int(ahead)} s in the future,"
            f" outside the tolerance zone ({tolerance} s)"
        )


def _refuse_constant(name: str) -> Any:
    raise BadEvent(f"body has a {name} literal: not JSON, and never sent by Stripe")


def _without_nul(text: str) -> str:
    """The JSON with each \\u0000 escape replaced by \\ufffd: Postgres jsonb cannot hold U+0000."""
    if "\\u0000" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        slashes = match.group(1)
        return slashes[:-1] + "\\ufffd" if len(slashes) % 2 else match.group(0)

    return NUL_ESCAPE.sub(replace, text)


def _too_deep(node: Any, text: str, limit: int) -> bool:
    """Whether containers nest deeper than `limit` (walked level by level: no recursion to exhaust)."""
    if text.count("{") + text.count("[") <= limit:
        return False  # too few brackets to nest that deep: most events end here
    level = [node]
    for _ in range(limit):
        below: list[Any] = []
        for item in level:
            for value in item.values() if type(item) is dict else item:
                if type(value) is dict or type(value) is list:
                    below.append(value)
        if not below:
            return False
        level = below
    return True


def _id(value: Any, pattern: re.Pattern[str] | None = None) -> bool:
    """Whether value is an id we can store and index: a bounded string, of Stripe's shape when given."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID:
        return False
    return bool(pattern.fullmatch(value)) if pattern else not CONTROL.search(value)


def parse(payload: bytes) -> tuple[dict[str, Any], str]:
    """The event and the JSON text to store, if the body is a storable snapshot event (thin v2 events are refused)."""
    if payload.startswith(BOM):
        raise BadEvent("body starts with a byte order mark: send the JSON alone, as Stripe does")
    try:
        text = _without_nul(payload.decode("utf-8"))
        event = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadEvent("body is not JSON") from exc
    except RecursionError as exc:
        raise BadEvent(f"body nests deeper than {MAX_DEPTH} levels: not a Stripe event") from exc
    if not isinstance(event, dict):
        raise BadEvent("body is not a Stripe event")
    if event.get("object") != "event":
        kind = event.get("object")
        if isinstance(kind, str) and kind.startswith("v2."):
            raise BadEvent("thin (v2) events are not supported: point a snapshot-event endpoint here")
        raise BadEvent("body is not a Stripe event (object is not 'event')")
    if _too_deep(event, text, MAX_DEPTH):
        raise BadEvent(f"body nests deeper than {MAX_DEPTH} levels: not a Stripe event")
    if not _id(event.get("id"), EVENT_ID):
        raise BadEvent(f"event id missing or not an evt_ id (letters, digits, _; at most {MAX_ID} characters)")
    if not _id(event.get("type"), EVENT_TYPE):
        raise BadEvent("event type missing or not a Stripe event type")
    created = event.get("created")
    # bool is an int to Python: `true` must not pass for a time.
    if type(created) is not int:
        raise BadEvent("event created time missing or not an integer")
    if not EARLIEST <= created <= LATEST:
        raise BadEvent(f"event created time {created} is outside {EARLIEST}..{LATEST} (2010 to 2100)")
    if event.get("account") is not None and not _id(event["account"], ACCOUNT_ID):
        raise BadEvent("event account is not an acct_ id")
    version = event.get("api_version")
    if version is not None and not _id(version):
        raise BadEvent(f"event api_version is not a string of at most {MAX_ID} characters")
    if not isinstance(event.get("livemode", False), bool):
        raise BadEvent("event livemode is not true or false")
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise BadEvent("event has no data.object: not a snapshot event")
    if data["object"].get("id") is not None and not _id(data["object"]["id"]):
        raise BadEvent(f"data.object id is not a string of at most {MAX_ID} characters")
    return event, text


def register(app: Flask, deps: Deps) -> None:
    """Mount the webhook route on the Flask app."""
    bp = Blueprint("stripe_webhooks", __name__)
    settings = deps.settings

    @bp.post("/webhooks/stripe")
    def receive() -> ResponseReturnValue:
        if (request.content_length or 0) > MAX_BODY:
            raise RequestEntityTooLarge("a Stripe event is never larger than 1 MB")
        payload = request.get_data(cache=False)
        try:
            verify(
                payload,
                request.headers.get("Stripe-Signature"),
                settings.stripe_webhook_secrets,
                settings.webhook_tolerance_seconds,
            )
            event, text = parse(payload)
        except BadEvent as exc:
            metrics.WEBHOOKS.labels("rejected", "unknown").inc()
            return jsonify(error="Bad Request", reason=str(exc)), 400
        try:
            with db.connection(deps.pool) as conn:
                stored = events.record(conn, event, without_card_data(event, text))
        except DatabaseUnavailable:
            metrics.WEBHOOKS.labels("unavailable", event["type"]).inc()
            log.warning("database unavailable: answering 503 to %s so Stripe retries", event["id"])
            return jsonify(error="Service Unavailable", reason="database unavailable; Stripe will retry"), 503
        except Unstorable as exc:
            # The database refused this event's data: a retry gets the same answer, so not a 503.
            metrics.WEBHOOKS.labels("rejected", event["type"]).inc()
            log.warning("event %s refused by the database: %s", event["id"], exc.message)
            return jsonify(error="Bad Request", reason=f"event cannot be stored: {exc.message}"), 400
        metrics.WEBHOOKS.labels("stored" if stored else "duplicate", event["type"]).inc()
        return Response(STORED if stored else DUPLICATE, mimetype="application/json")

    app.register_blueprint(bp)
