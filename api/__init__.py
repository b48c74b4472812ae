"""The operator API under /api/v1: other systems read the desk and file refund requests with an API key."""

from __future__ import annotations

from flask import Flask, Request, Response

from api import problems, routes
from services.deps import Deps

PREFIX = "/api/"


def register(flask_app: Flask, deps: Deps) -> None:
    """Mount the /api/v1 routes."""
    flask_app.register_blueprint(routes.blueprint(deps))


def is_api(request: Request) -> bool:
    """Whether a request was for the API (its errors are problem documents)."""
    return request.path.startswith(PREFIX)


def error_response(status: int, detail: str | None = None, headers: list[tuple[str, str]] | None = None) -> Response:
    """An HTTP error raised outside the API's routes (unknown path, wrong method, body too large), as a problem.

    Werkzeug's own headers are kept (a 405's Allow) except its Content-Type.
    """
    kept = {name: value for name, value in headers or [] if name.lower() != "content-type"}
    return problems.for_status(status, detail, kept)
