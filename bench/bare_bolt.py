"""A bare Bolt app whose /refunds listener only acks: the floor the lookup benchmark compares against.

Served exactly like the real web process (`gunicorn 'bench.bare_bolt:create_app()'`, sync workers),
so the difference between the two is what our listener, the store and Block Kit add.
"""

from __future__ import annotations

import os

from flask import Flask, jsonify, request
from slack_bolt import Ack, App
from slack_bolt.adapter.flask import SlackRequestHandler
from slack_bolt.authorization import AuthorizeResult

BOT_TOKEN = "xoxb-bench"


def build_bolt(signing_secret: str) -> App:
    """Bolt configured as bot/__init__.py configures ours, minus our listeners."""

    # As in bot/__init__.py: authorize from configuration, so no request ever calls auth.test.
    # (Bolt ignores `token=` when `authorize=` is given, so we pass only the latter.)
    def authorize(enterprise_id: str | None, team_id: str | None, user_id: str | None) -> AuthorizeResult:
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, user_id=user_id, bot_token=BOT_TOKEN)

    app = App(
        signing_secret=signing_secret,
        authorize=authorize,
        token_verification_enabled=False,
        process_before_response=True,
        raise_error_for_unhandled_request=False,
    )

    @app.command("/refunds")
    def only_ack(ack: Ack) -> None:
        ack()

    return app


def create_app() -> Flask:
    """The Flask app factory (gunicorn: `bench.bare_bolt:create_app()`); reads SLACK_SIGNING_SECRET."""
    handler = SlackRequestHandler(build_bolt(os.environ["SLACK_SIGNING_SECRET"]))
    flask_app = Flask(__name__)

    @flask_app.post("/slack/events")
    def slack_events():
        return handler.handle(request)

    @flask_app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    return flask_app
