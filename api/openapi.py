"""GET /api/v1/openapi.json: the OpenAPI 3.1 description of every route, parameter, body, answer and error.

Built here as data, next to the routes it describes; the tests validate the document itself and every
answer they receive against it, and fuzz every route from it.
"""

from __future__ import annotations

from typing import Any

from api.problems import PROBLEMS, TYPE_PREFIX
from domain.history import DEFAULT_LIMIT, MAX_LIMIT, REQUEST_STATUSES, STATUS_GROUPS

REFUND_STATUSES = ("pending", "requires_action", "succeeded", "failed", "canceled")
DISPUTE_STATUSES = (
    "warning_needs_response",
    "warning_under_review",
    "warning_closed",
    "needs_response",
    "under_review",
    "won",
    "lost",
    "prevented",
)
STRIPE_ID = r"^(?:pyr|pi|ch|py|re|dp|du)_[A-Za-z0-9]{6,250}$"
PAYMENT_ID = r"^(?:pi|ch|py)_[A-Za-z0-9]{6,250}$"
AMOUNT = r"^[0-9]{1,15}(?:\.[0-9]{1,3})?$"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return {"oneOf": [schema, {"type": "null"}]}
    kind = schema["type"]
    return {**schema, "type": [kind, "null"]}


STRING = {"type": "string"}
TIME = {"type": "string", "format": "date-time"}


def _object(properties: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "properties": properties,
        "required": sorted(properties),
        "additionalProperties": False,
    }


_REQUEST_PROPERTIES: dict[str, Any] = {
    "number": {"type": "integer", "description": "The request's number (#42 in Slack)."},
    "payment": STRING,
    "charge": _nullable(STRING),
    "account": _nullable(STRING),
    "amount": _ref("Money"),
    "reason": {"type": "string", "enum": ["requested_by_customer", "duplicate", "fraudulent"]},
    "note": _nullable(STRING),
    "status": {"type": "string", "enum": list(REQUEST_STATUSES)},
    "requested_by": {
        "type": "string",
        "description": "A Slack user id, or api:NAME for a request filed by an API key.",
    },
    "requested_via": {"type": "string"},
    "approvals": {"type": "array", "items": STRING},
    "approvals_needed": {"type": "integer", "minimum": 0, "maximum": 2},
    "decided_by": _nullable(STRING),
    "decided_at": _nullable(TIME),
    "reject_reason": _nullable(STRING),
    "stripe_refund": _nullable(STRING),
    "failure_message": _nullable(STRING),
    "created_at": TIME,
    "updated_at": TIME,
    "expires_at": TIME,
}

SCHEMAS: dict[str, Any] = {
    "Money": _object(
        {
            "value": {"type": "string", "pattern": AMOUNT, "description": "Major units, as POST takes them."},
            "minor": {"type": "integer", "minimum": 0, "description": "Minor units, as Stripe has them."},
            "currency": {"type": "string", "pattern": "^[a-z]{3}$"},
        },
        "An amount of money.",
    ),
    "RefundRequest": _object(_REQUEST_PROPERTIES, "A refund asked for through Slack or the API."),
    "TimelineStep": _object(
        {
            "at": TIME,
            "step": {
                "type": "string",
                "description": "asked, approval_added, approved, rejected, expired, sent, unconfirmed, refused, "
                "refund_pending, succeeded, failed or canceled.",
            },
            "actor": _nullable(STRING),
            "note": _nullable(STRING),
        },
        "One step of a request, read from the audit log.",
    ),
    "RefundRequestDetail": _object(
        {
            **_REQUEST_PROPERTIES,
            "timeline": {"type": "array", "items": _ref("TimelineStep")},
            "refund": _nullable(_ref("Refund")),
        },
        "A refund request with its timeline and its Stripe refund.",
    ),
    "Refund": _object(
        {
            "id": STRING,
            "payment_intent": _nullable(STRING),
            "charge": _nullable(STRING),
            "account": _nullable(STRING),
            "amount": _ref("Money"),
            "status": {"type": "string", "description": "As Stripe says: " + ", ".join(REFUND_STATUSES) + "…"},
            "reason": _nullable(STRING),
            "failure_reason": _nullable(STRING),
            "request": _nullable({"type": "integer"}),
            "created_at": TIME,
        },
        "A Stripe refund as last seen.",
    ),
    "Dispute": _object(
        {
            "id": STRING,
            "payment_intent": _nullable(STRING),
            "charge": _nullable(STRING),
            "account": _nullable(STRING),
            "livemode": {"type": "boolean"},
            "amount": _ref("Money"),
            "status": {"type": "string", "description": "As Stripe says: " + ", ".join(DISPUTE_STATUSES) + "…"},
            "reason": _nullable(STRING),
            "evidence_due_by": _nullable(TIME),
            "evidence_submitted": {"type": "boolean"},
            "owner": _nullable({"type": "string", "description": "The Slack user who took it."}),
            "created_at": TIME,
        },
        "A dispute or inquiry as last seen.",
    ),
    "Payment": _object(
        {
            "id": STRING,
            "payment_intent": _nullable(STRING),
            "charge": _nullable(STRING),
            "account": _nullable(STRING),
            "livemode": {"type": "boolean"},
            "status": STRING,
            "amount": _ref("Money"),
            "captured": _ref("Money"),
            "refunded": _ref("Money"),
            "refundable": _ref("Money"),
            "customer": _object({"id": _nullable(STRING), "email": _nullable(STRING)}, "The customer."),
            "card": _nullable(
                _object({"brand": _nullable(STRING), "last4": STRING}, "The card's brand and last four digits.")
            ),
            "description": _nullable(STRING),
            "failure": _nullable(
                _object({"code": _nullable(STRING), "message": _nullable(STRING)}, "The last failure.")
            ),
            "created_at": TIME,
            "refunds": {"type": "array", "items": _ref("Refund")},
            "disputes": {"type": "array", "items": _ref("Dispute")},
            "open_requests": {
                "type": "array",
                "items": _object(
                    {
                        "number": {"type": "integer"},
                        "amount": _ref("Money"),
                        "status": STRING,
                        "requested_by": STRING,
                        "stripe_refund": _nullable(STRING),
                    },
                    "An open refund request on the payment.",
                ),
            },
        },
        "A payment (payment intent, or charge without one) with its refunds, disputes and open requests.",
    ),
    "NewRefundRequest": {
        "type": "object",
        "description": "A refund to ask for; a person approves it in Slack before anything is refunded.",
        "properties": {
            "payment": {"type": "string", "pattern": PAYMENT_ID},
            "amount": {
                "type": "string",
                "pattern": AMOUNT,
                "description": "Major units of the payment's currency; leave it out for everything still refundable.",
            },
            "reason": {"type": "string", "enum": ["requested_by_customer", "duplicate", "fraudulent"]},
            "note": {"type": "string", "maxLength": 2000},
        },
        "required": ["payment"],
        "additionalProperties": False,
    },
    "Problem": {
        "type": "object",
        "description": "An error (RFC 9457). `type` is stable: match on it, not on the words.",
        "properties": {
            "type": {"type": "string", "enum": [TYPE_PREFIX + slug for slug in PROBLEMS]},
            "title": STRING,
            "status": {"type": "integer"},
            "detail": STRING,
            "errors": {
                "type": "array",
                "items": _object({"field": STRING, "detail": STRING}, "The field in error."),
            },
        },
        "required": ["type", "title", "status", "detail"],
        "additionalProperties": False,
    },
}
for _kind, _item in (("RefundRequest", "RefundRequest"), ("Refund", "Refund"), ("Dispute", "Dispute")):
    SCHEMAS[f"{_kind}Page"] = _object(
        {
            "data": {"type": "array", "items": _ref(_item)},
            "has_more": {"type": "boolean"},
            "next_cursor": _nullable({"type": "string", "description": "Pass as `cursor` for the next page."}),
        },
        f"A page of {_kind} records; follow next_cursor until has_more is false.",
    )

HEADERS = {
    "RetryAfter": {"description": "Seconds to wait before trying again.", "schema": {"type": "integer", "minimum": 1}},
    "WWWAuthenticate": {"description": "How to authenticate.", "schema": STRING},
    "Location": {"description": "The new request's URL.", "schema": STRING},
    "IdempotentReplayed": {
        "description": "true when this is the kept answer of an earlier request with this Idempotency-Key.",
        "schema": {"type": "string", "enum": ["true"]},
    },
}


def _problem(description: str, **headers: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {"application/problem+json": {"schema": _ref("Problem")}},
    }
    if headers:
        out["headers"] = {name: {"$ref": f"#/components/headers/{ref}"} for name, ref in headers.items()}
    return out


RESPONSES = {
    "Unauthorized": _problem(
        "No key, or an unknown or revoked one (type …:unauthorized).", **{"WWW-Authenticate": "WWWAuthenticate"}
    ),
    "Forbidden": _problem("The key lacks the scope (type …:forbidden)."),
    "NotFound": _problem("Nothing with that id or number (type …:not-found)."),
    "Invalid": _problem("A parameter or field is not valid; `errors` names it (type …:validation-failed)."),
    "RateLimited": _problem(
        "The key made too many requests (API_RATE_LIMIT; type …:rate-limited).", **{"Retry-After": "RetryAfter"}
    ),
    "Unavailable": _problem(
        "Stripe or the database did not answer; nothing was changed (type …:upstream-unavailable).",
        **{"Retry-After": "RetryAfter"},
    ),
}


def _responses(ok: dict[str, Any], *extra: str, stripe: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {**ok}
    out["401"] = {"$ref": "#/components/responses/Unauthorized"}
    out["403"] = {"$ref": "#/components/responses/Forbidden"}
    for code in extra:
        out[code] = {"$ref": f"#/components/responses/{ {'404': 'NotFound', '422': 'Invalid'}[code] }"}
    out["429"] = {"$ref": "#/components/responses/RateLimited"}
    out["503"] = {"$ref": "#/components/responses/Unavailable"}
    return out


def _param(name: str, schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description, **extra}


def _filters(statuses: list[str], who: str, who_description: str, sort: str) -> list[dict[str, Any]]:
    return [
        _param(
            "status",
            {"type": "array", "items": {"type": "string", "enum": statuses}, "minItems": 1},
            "Only these statuses, comma-separated.",
            style="form",
            explode=False,
        ),
        _param(who, {"type": "string", "minLength": 1, "maxLength": 255}, who_description),
        _param("since", TIME, f"Only those {sort} at or after this time (RFC 3339, with its offset)."),
        _param("until", TIME, f"Only those {sort} before this time."),
        _param(
            "limit",
            {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
            "Rows per page.",
        ),
        _param(
            "cursor",
            {"type": "string", "minLength": 1, "maxLength": 200},
            "Where the page starts: the next_cursor of the page before. Pages stay stable while rows are added.",
        ),
    ]


def _page(name: str) -> dict[str, Any]:
    return {"200": {"description": "A page.", "content": {"application/json": {"schema": _ref(name)}}}}


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document."""
    request_words = list(REQUEST_STATUSES) + list(STATUS_GROUPS)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Refund desk API",
            "version": "1.0.0",
            "description": (
                "Read payments, refund requests, refunds and disputes, and file refund requests that a person "
                "approves in Slack. Authenticate with `Authorization: Bearer <key>` (`refund-desk api-keys create`). "
                "Each key may make API_RATE_LIMIT requests a second (default 10, bursts of 20). Lists are "
                "keyset-paginated: follow `next_cursor`."
            ),
        },
        "security": [{"apiKey": []}],
        "paths": {
            "/api/v1/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document.",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "The OpenAPI document.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
            "/api/v1/payments/{id}": {
                "get": {
                    "operationId": "getPayment",
                    "summary": "Look up a payment by any id /refunds takes: pi_, ch_, py_, re_, pyr_, dp_ or du_.",
                    "description": "From our records, else from Stripe (and kept). Needs the `read` scope.",
                    "parameters": [
                        {
                            "name": "id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "pattern": STRIPE_ID},
                        }
                    ],
                    "responses": _responses(
                        {
                            "200": {
                                "description": "The payment.",
                                "content": {"application/json": {"schema": _ref("Payment")}},
                            }
                        },
                        "404",
                    ),
                }
            },
            "/api/v1/refund-requests": {
                "get": {
                    "operationId": "listRefundRequests",
                    "summary": "Refund requests, newest first. Needs `read`.",
                    "parameters": _filters(
                        request_words, "requested_by", "Only those asked by this Slack user id (or api:NAME).", "made"
                    ),
                    "responses": _responses(_page("RefundRequestPage"), "422"),
                },
                "post": {
                    "operationId": "createRefundRequest",
                    "summary": "Ask for a refund. Needs `request`. Never runs at once: a person approves it in Slack.",
                    "description": (
                        "The key's name is the requester (`api:NAME`). The request goes through the same rules as one "
                        "from Slack and waits in the approvals channel. Send an `Idempotency-Key` to retry safely: the "
                        "same key and body get the first answer again; the same key with another body is a 409."
                    ),
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("NewRefundRequest")}},
                    },
                    "responses": {
                        **_responses(
                            {
                                "201": {
                                    "description": "Filed; it waits for an approver.",
                                    "headers": {
                                        "Location": {"$ref": "#/components/headers/Location"},
                                        "Idempotent-Replayed": {"$ref": "#/components/headers/IdempotentReplayed"},
                                    },
                                    "content": {"application/json": {"schema": _ref("RefundRequest")}},
                                }
                            },
                            "404",
                            "422",
                        ),
                        "400": _problem("The body is not JSON (type …:bad-request)."),
                        "409": _problem(
                            "Already pending for this payment, or the Idempotency-Key was used with another body or "
                            "is still being answered (types …:already-pending, …:idempotency-key-reused, "
                            "…:idempotency-key-in-use).",
                            **{"Retry-After": "RetryAfter"},
                        ),
                        "413": _problem("The body is over 1 MB (type …:payload-too-large)."),
                        "415": _problem("The body is not application/json (type …:unsupported-media-type)."),
                    },
                },
            },
            "/api/v1/refund-requests/{number}": {
                "get": {
                    "operationId": "getRefundRequest",
                    "summary": "One refund request with its timeline. Needs `read`.",
                    "parameters": [
                        {
                            "name": "number",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
                        }
                    ],
                    "responses": _responses(
                        {
                            "200": {
                                "description": "The request.",
                                "content": {"application/json": {"schema": _ref("RefundRequestDetail")}},
                            }
                        },
                        "404",
                    ),
                }
            },
            "/api/v1/refunds": {
                "get": {
                    "operationId": "listRefunds",
                    "summary": "Stripe refunds, newest first, wherever they were made. Needs `read`.",
                    "parameters": _filters(
                        list(REFUND_STATUSES),
                        "requested_by",
                        "Only refunds made by requests of this Slack user id (or api:NAME).",
                        "created",
                    ),
                    "responses": _responses(_page("RefundPage"), "422"),
                }
            },
            "/api/v1/disputes": {
                "get": {
                    "operationId": "listDisputes",
                    "summary": "Disputes, the soonest evidence deadline first (none last). Needs `read`.",
                    "parameters": _filters(
                        [*DISPUTE_STATUSES, "open"], "owner", "Only disputes this Slack user id took.", "created"
                    ),
                    "responses": _responses(_page("DisputePage"), "422"),
                }
            },
        },
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer", "description": "An API key (rdk_…)."}},
            "schemas": SCHEMAS,
            "responses": RESPONSES,
            "headers": HEADERS,
        },
    }
