"""POST /webhooks/stripe: verify, record, dedupe; processing happens in the worker.

The 2xx goes out only after the event is committed to the inbox; a redelivery answers 200 and
is not stored again; the database being down answers 503 so Stripe retries.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import stripe
from flask import Blueprint, Flask, Response, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from domain.errors import DatabaseUnavailable
from domain.redact import without_card_data
from services import metrics
from services.deps import Deps
from store import db, events

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
# The two answers Stripe gets, prebuilt: jsonify costs more than the rest of the response.
STORED = b'{"duplicate":false,"received":true}\n'
DUPLICATE = b'{"duplicate":true,"received":true}\n'


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
            return
        except stripe.SignatureVerificationError as exc:
            problems.append(str(exc))
    stale = [p for p in problems if "tolerance" in p]
    reason = stale[0] if stale else problems[0]
    raise BadEvent(f"bad signature: {reason}")


def parse(payload: bytes) -> dict[str, Any]:
    """The event, if the body is a snapshot event (thin v2 events are refused)."""
    try:
        event = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadEvent("body is not JSON") from exc
    if not isinstance(event, dict):
        raise BadEvent("body is not a Stripe event")
    if event.get("object") != "event":
        kind = event.get("object")
        if isinstance(kind, str) and kind.startswith("v2."):
            raise BadEvent("thin (v2) events are not supported: point a snapshot-event endpoint here")
        raise BadEvent("body is not a Stripe event (object is not 'event')")
    if not (isinstance(event.get("id"), str) and event["id"].startswith("evt_")):
        raise BadEvent("event id missing or not an evt_ id")
    if not isinstance(event.get("type"), str) or not event["type"]:
        raise BadEvent("event type missing")
    if not isinstance(event.get("created"), int):
        raise BadEvent("event created time missing")
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise BadEvent("event has no data.object: not a snapshot event")
    return event


def register(app: Flask, deps: Deps) -> None:
    """Mount the webhook route on the Flask app."""
    bp = Blueprint("stripe_webhooks", __name__)
    settings = deps.settings

    @bp.post("/webhooks/stripe")
    def receive():
        if (request.content_length or 0) > MAX_BODY:
            raise RequestEntityTooLarge("a Stripe event is never larger than 1 MB")
        payload = request.get_data(cache=False)
        try:
            verify(payload, request.headers.get("Stripe-Signature"), settings.stripe_webhook_secrets,
                   settings.webhook_tolerance_seconds)
            event = parse(payload)
        except BadEvent as exc:
            metrics.WEBHOOKS.labels("rejected", "unknown").inc()
            return jsonify(error="Bad Request", reason=str(exc)), 400
        try:
            with db.connection(deps.pool) as conn:
                stored = events.record(conn, event, without_card_data(event, payload.decode("utf-8")))
        except DatabaseUnavailable:
            metrics.WEBHOOKS.labels("unavailable", event["type"]).inc()
            log.warning("database unavailable: answering 503 to %s so Stripe retries", event["id"])
            return jsonify(error="Service Unavailable", reason="database unavailable; Stripe will retry"), 503
        metrics.WEBHOOKS.labels("stored" if stored else "duplicate", event["type"]).inc()
        return Response(STORED if stored else DUPLICATE, mimetype="application/json")

    app.register_blueprint(bp)
