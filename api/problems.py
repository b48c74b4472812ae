"""Errors as application/problem+json (RFC 9457): one stable type per kind of error."""

from __future__ import annotations

from flask import Response, json

MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:refund-desk:problem:"

# slug → (status, title). The slug is the stable part clients match on; titles may be reworded.
PROBLEMS: dict[str, tuple[int, str]] = {
    "bad-request": (400, "The request body is not valid JSON"),
    "unauthorized": (401, "A valid API key is required"),
    "forbidden": (403, "This API key lacks the scope for this"),
    "not-found": (404, "Not found"),
    "method-not-allowed": (405, "Method not allowed"),
    "already-pending": (409, "A request for this payment is already waiting for approval"),
    "idempotency-key-reused": (409, "This Idempotency-Key was used with another request"),
    "idempotency-key-in-use": (409, "A request with this Idempotency-Key is still being answered"),
    "payload-too-large": (413, "The request body is too large"),
    "unsupported-media-type": (415, "Send the body as application/json"),
    "validation-failed": (422, "A parameter or field is not valid"),
    "request-refused": (422, "This refund cannot be requested"),
    "rate-limited": (429, "Too many requests for this API key"),
    "internal": (500, "Something went wrong on our side"),
    "upstream-unavailable": (503, "Stripe or the database did not answer in time; nothing was changed"),
}


class Problem(Exception):
    """An error answer; raised anywhere in a route, rendered once."""

    def __init__(
        self,
        slug: str,
        detail: str | None = None,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        status, title = PROBLEMS[slug]
        super().__init__(detail or title)
        self.slug, self.status, self.title = slug, status, title
        self.detail = detail or title
        self.field = field
        self.headers = headers or {}

    def body(self) -> dict:
        """The problem document."""
        doc: dict = {"type": TYPE_PREFIX + self.slug, "title": self.title, "status": self.status, "detail": self.detail}
        if self.field:
            doc["errors"] = [{"field": self.field, "detail": self.detail}]
        return doc

    def response(self) -> Response:
        """The HTTP answer."""
        return problem_response(self.status, self.body(), self.headers)

    @staticmethod
    def from_body(body: dict, headers: dict[str, str] | None = None) -> Response:
        """A problem document kept earlier (an Idempotency-Key's first answer), answered again."""
        return problem_response(int(body["status"]), body, headers)


def problem_response(status: int, body: dict, headers: dict[str, str] | None = None) -> Response:
    """A problem+json response with this status and document."""
    resp = Response(json.dumps(body), status=status, mimetype=MEDIA_TYPE)
    for name, value in (headers or {}).items():
        resp.headers[name] = value
    return resp


def for_status(status: int, detail: str | None = None, headers: dict[str, str] | None = None) -> Response:
    """A problem answer for an HTTP error raised outside our routes (an unknown path, a wrong method)."""
    slug = {
        400: "bad-request",
        404: "not-found",
        405: "method-not-allowed",
        413: "payload-too-large",
        415: "unsupported-media-type",
    }.get(status, "internal" if status >= 500 else "bad-request")
    problem = Problem(slug, detail, headers=headers)
    if status != problem.status:
        return problem_response(status, {**problem.body(), "status": status}, headers)
    return problem.response()
