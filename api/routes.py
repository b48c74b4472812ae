"""The routes under /api/v1: check the key, read the parameters, call one service, render JSON. Nothing more."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
from flask import Blueprint, Response, request

from api import openapi, serialize
from api.openapi import DISPUTE_STATUSES, REFUND_STATUSES, document
from api.problems import Problem
from domain.clock import utcnow
from domain.errors import DatabaseUnavailable, DeskError, NotFound
from domain.history import (
    DEFAULT_LIMIT,
    DISPUTE_OPEN,
    MAX_LIMIT,
    REQUEST_STATUSES,
    STATUS_GROUPS,
    CursorError,
    Filter,
    Position,
    decode_cursor,
)
from domain.models import RefundRequest
from domain.policy import Roles
from domain.ratelimit import retry_after
from services import api_keys, history, lookup, refund_requests
from services.deps import Deps
from store.api_keys import Caller

JSON = "application/json"
REASONS = ("requested_by_customer", "duplicate", "fraudulent")
# The same patterns openapi.json states, so the document and the checks cannot disagree.
STRIPE_ID = re.compile(openapi.STRIPE_ID)
PAYMENT_ID = re.compile(openapi.PAYMENT_ID)
AMOUNT = re.compile(openapi.AMOUNT)
NUMBER = re.compile(r"^[0-9]{1,18}$")
MAX_NUMBER = 2**63 - 1
BODY_FIELDS = frozenset({"payment", "amount", "reason", "note"})
WWW_AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="refund-desk"'}


def _json(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    resp = Response(orjson.dumps(body), status=status, mimetype=JSON)
    for name, value in (headers or {}).items():
        resp.headers[name] = value
    return resp


def blueprint(deps: Deps) -> Blueprint:
    """The /api/v1 routes, bound to the process's shared clients."""
    bp = Blueprint("api_v1", __name__, url_prefix="/api/v1")
    settings = deps.settings
    openapi_body = json.dumps(document())

    def caller(scope: str) -> Caller:
        scheme, _, credentials = request.headers.get("Authorization", "").strip().partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise Problem("unauthorized", "Send Authorization: Bearer <API key>.", headers=WWW_AUTHENTICATE)
        found = api_keys.authenticate(deps.pool, settings, credentials.strip(), utcnow())
        if found is None:
            raise Problem("unauthorized", "This API key is unknown or revoked.", headers=WWW_AUTHENTICATE)
        limit = settings.api_rate_limit
        if not found.allowed:
            raise Problem(
                "rate-limited",
                f"This key may make {limit.rate:g} requests a second, in bursts of up to {limit.burst}.",
                headers={"Retry-After": str(retry_after(found.tokens, limit.rate))},
            )
        if scope not in found.scopes:
            raise Problem("forbidden", f"This API key lacks the `{scope}` scope.")
        return found

    # --- query parameters -------------------------------------------------------------------------

    def statuses(allowed: tuple[str, ...], groups: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
        raw = request.args.get("status")
        if raw is None:
            return ()
        out: list[str] = []
        for word in raw.split(","):
            if word in groups:
                out += groups[word]
            elif word in allowed:
                out.append(word)
            else:
                raise Problem(
                    "validation-failed", f"status: {word[:40]!r} is not one of {', '.join(allowed)}", field="status"
                )
        return tuple(dict.fromkeys(out))

    def moment(name: str) -> datetime | None:
        raw = request.args.get(name)
        if raw is None:
            return None
        try:
            when = datetime.fromisoformat(raw)
        except ValueError:
            when = None
        if when is None or when.tzinfo is None:
            raise Problem(
                "validation-failed",
                f"{name}: an RFC 3339 date-time with its offset, e.g. 2026-11-01T00:00:00Z",
                field=name,
            )
        return when

    def text(name: str) -> str | None:
        raw = request.args.get(name)
        if raw is not None and not 1 <= len(raw) <= 255:
            raise Problem("validation-failed", f"{name}: 1 to 255 characters", field=name)
        return raw

    def limit() -> int:
        raw = request.args.get("limit")
        if raw is None:
            return DEFAULT_LIMIT
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 4 and 1 <= int(raw) <= MAX_LIMIT):
            raise Problem("validation-failed", f"limit: a whole number from 1 to {MAX_LIMIT}", field="limit")
        return int(raw)

    def cursor() -> Position | None:
        raw = request.args.get("cursor")
        if raw is None:
            return None
        try:
            return decode_cursor(raw)
        except CursorError as exc:
            raise Problem("validation-failed", f"cursor: {exc}; use next_cursor from a page", field="cursor") from exc

    def listing(run: Callable[[], Any], render: Callable[[Any], dict]) -> Response:
        try:
            return _json(serialize.page(run(), render))
        except CursorError as exc:
            raise Problem("validation-failed", "cursor: not one of this list's cursors", field="cursor") from exc

    # --- routes -----------------------------------------------------------------------------------------

    @bp.get("/openapi.json")
    def openapi() -> Response:
        return Response(openapi_body, mimetype=JSON)

    @bp.get("/payments/<stripe_id>")
    def get_payment(stripe_id: str) -> Response:
        caller("read")
        if not STRIPE_ID.match(stripe_id):
            raise Problem(
                "not-found", "Not a payment, charge, refund or dispute id (pi_, ch_, py_, re_, pyr_, dp_, du_)."
            )
        try:
            view = lookup.from_store(deps.pool, stripe_id) or lookup.from_stripe(
                deps.pool, deps.stripe, stripe_id, now=utcnow()
            )
        except NotFound as exc:
            raise Problem("not-found", exc.message) from exc
        return _json(serialize.payment(view))

    @bp.get("/refund-requests")
    def list_requests() -> Response:
        caller("read")
        f = Filter(
            statuses(REQUEST_STATUSES, STATUS_GROUPS),
            requested_by=text("requested_by"),
            since=moment("since"),
            until=moment("until"),
        )
        n, after = limit(), cursor()
        return listing(lambda: history.requests(deps.pool, f, limit=n, after=after), serialize.refund_request)

    @bp.get("/refund-requests/<number>")
    def get_request(number: str) -> Response:
        caller("read")
        if not NUMBER.match(number) or int(number) > MAX_NUMBER:
            raise Problem("not-found", "Refund requests are numbered 1, 2, 3…")
        try:
            detail = history.request_detail(deps.pool, int(number))
        except NotFound as exc:
            raise Problem("not-found", exc.message) from exc
        return _json(serialize.request_detail(detail))

    @bp.get("/refunds")
    def list_refunds() -> Response:
        caller("read")
        f = Filter(
            statuses(REFUND_STATUSES, {}),
            requested_by=text("requested_by"),
            since=moment("since"),
            until=moment("until"),
        )
        n, after = limit(), cursor()
        return listing(lambda: history.refunds(deps.pool, f, limit=n, after=after), serialize.refund)

    @bp.get("/disputes")
    def list_disputes() -> Response:
        caller("read")
        f = Filter(
            statuses(DISPUTE_STATUSES, {"open": DISPUTE_OPEN}),
            requested_by=text("owner"),
            since=moment("since"),
            until=moment("until"),
        )
        n, after = limit(), cursor()
        return listing(lambda: history.disputes(deps.pool, f, limit=n, after=after), serialize.dispute)

    @bp.post("/refund-requests")
    def file_request() -> Response:
        who = caller("request")
        if (request.mimetype or "") != JSON:
            raise Problem("unsupported-media-type", "Send the body as application/json.")
        try:
            body = json.loads(request.get_data() or b"null")
        except (ValueError, RecursionError) as exc:
            raise Problem("bad-request", "The body is not valid JSON.") from exc
        fields = _validated(body)
        key = request.headers.get("Idempotency-Key")
        if key is None:
            status, answer = _file(who, fields)
            replayed = False
        else:
            if not 1 <= len(key) <= 255:
                raise Problem("validation-failed", "Idempotency-Key: 1 to 255 characters", field="Idempotency-Key")
            digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()
            try:
                status, answer, replayed = api_keys.idempotent(
                    deps.pool, who, key, digest, lambda: _file(who, fields), now=utcnow
                )
            except api_keys.IdempotencyMismatch as exc:
                raise Problem("idempotency-key-reused", exc.message) from exc
            except api_keys.IdempotencyBusy as exc:
                raise Problem("idempotency-key-in-use", exc.message, headers={"Retry-After": "1"}) from exc
        headers = {"Idempotent-Replayed": "true"} if replayed else {}
        if status == 201:
            headers["Location"] = f"/api/v1/refund-requests/{answer['number']}"
            return _json(answer, 201, headers)
        return Problem.from_body(answer, headers)

    def _file(who: Caller, fields: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """File the request as the key's name; (status, body) of every answer worth replaying."""
        try:
            req = refund_requests.ask(
                deps.requests,
                payment_id=fields["payment"],
                amount_text=fields.get("amount"),
                reason=fields.get("reason", "requested_by_customer"),
                note=fields.get("note"),
                user=f"api:{who.name}",
                # A key asks as a requester who is never an approver, and always waits for a person.
                roles=Roles(requester=True, approver=False),
                via="api",
                now=utcnow(),
                needs_approver=True,
            )
        except NotFound as exc:
            return 404, Problem("not-found", exc.message, field="payment").body()
        except refund_requests.AlreadyPending as exc:
            return 409, Problem("already-pending", exc.message, field="payment").body()
        except refund_requests.RequestRefused as exc:
            return 422, Problem("request-refused", exc.message, field=exc.field).body()
        if not isinstance(req, RefundRequest):  # pragma: no cover - needs_approver never drafts
            raise RuntimeError("an API request was drafted instead of filed")
        # As the client read it: the kept answer of an Idempotency-Key is stored as JSON.
        return 201, orjson.loads(orjson.dumps(serialize.refund_request(req)))

    @bp.errorhandler(Problem)
    def problem(exc: Problem) -> Response:
        return exc.response()

    @bp.errorhandler(DatabaseUnavailable)
    def database_down(exc: DatabaseUnavailable) -> Response:
        return Problem("upstream-unavailable", exc.message, headers={"Retry-After": "5"}).response()

    @bp.errorhandler(DeskError)
    def upstream(exc: DeskError) -> Response:
        # Stripe slow, rate-limiting or refusing our key: nothing changed, and the answer says why.
        return Problem("upstream-unavailable", exc.message, headers={"Retry-After": "5"}).response()

    return bp


def _validated(body: Any) -> dict[str, Any]:
    """The POST body's fields, checked; raises a 422 naming the first field in error."""
    if not isinstance(body, dict):
        raise Problem("validation-failed", "The body must be a JSON object.", field="body")
    unknown = sorted(set(body) - BODY_FIELDS)
    if unknown:
        raise Problem("validation-failed", f"Unknown field {unknown[0][:40]!r}.", field=unknown[0][:40])
    payment = body.get("payment")
    if not isinstance(payment, str) or not PAYMENT_ID.match(payment):
        raise Problem("validation-failed", "payment: a payment id (pi_…, ch_… or py_…).", field="payment")
    fields: dict[str, Any] = {"payment": payment}
    if "amount" in body and body["amount"] is not None:
        if not isinstance(body["amount"], str) or not AMOUNT.match(body["amount"]):
            raise Problem(
                "validation-failed",
                'amount: major units as a string, e.g. "25.50"; leave it out for everything.',
                field="amount",
            )
        fields["amount"] = body["amount"]
    if "reason" in body and body["reason"] is not None:
        if body["reason"] not in REASONS:
            raise Problem("validation-failed", f"reason: one of {', '.join(REASONS)}.", field="reason")
        fields["reason"] = body["reason"]
    if "note" in body and body["note"] is not None:
        if not isinstance(body["note"], str) or len(body["note"]) > 2000:
            raise Problem("validation-failed", "note: text of at most 2,000 characters.", field="note")
        fields["note"] = body["note"]
    return fields
