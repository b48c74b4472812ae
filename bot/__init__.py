"""The Slack surface: the Bolt app, listeners by Slack feature, pure Block Kit rendering."""

from __future__ import annotations

import json
import logging

from slack_bolt import App, BoltResponse
from slack_bolt.authorization import AuthorizeResult

from bot import actions, commands, history, home, views
from services.deps import Deps

log = logging.getLogger(__name__)

SORRY = "Something went wrong on our side; nothing was changed. The on-call engineer can find the details in the logs."


def build_app(deps: Deps, *, socket_mode: bool = False, checked_upstream: bool = False) -> App:
    """The Bolt app with every listener registered.

    HTTP requests are signature-checked by Bolt, or, with checked_upstream, by bot.guard in front of it
    (its only way in, which then need not be checked twice).
    """
    settings = deps.settings

    # Authorization from settings, without an auth.test call on each process's first request:
    # a Slack outage must not stop the app from answering what it can.
    def authorize(enterprise_id: str | None, team_id: str | None, user_id: str | None) -> AuthorizeResult:
        return AuthorizeResult(
            enterprise_id=enterprise_id, team_id=team_id, user_id=user_id, bot_token=settings.slack_bot_token
        )

    app = App(
        signing_secret=settings.slack_signing_secret or "socket-mode-has-no-signing-secret",
        # Only the Socket Mode app skips the check: its requests come over Slack's own socket.
        # The process's one Slack client (built in app.py): Bolt hands each listener a copy with the token.
        client=deps.slack,
        authorize=authorize,
        # Listeners answer inside the request (store hits); slow work goes to lazy listeners.
        # This is also what Socket Mode and FaaS need, and it avoids Bolt's ack polling loop.
        process_before_response=True,
        request_verification_enabled=not (socket_mode or checked_upstream),
        raise_error_for_unhandled_request=False,
    )

    @app.error
    def on_error(error: Exception, body: dict) -> BoltResponse:
        log.error("unhandled error in a Slack listener (%s)", body.get("type") or body.get("command"), exc_info=error)
        if body.get("command"):
            return BoltResponse(
                status=200,
                headers={"content-type": ["application/json"]},
                body=json.dumps({"response_type": "ephemeral", "text": SORRY}),
            )
        return BoltResponse(status=200, body="")

    commands.register(app, deps)
    actions.register(app, deps)
    views.register(app, deps)
    history.register(app, deps)
    home.register(app, deps)
    return app
