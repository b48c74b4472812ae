"""The Home tab: published when a person opens it (app_home_opened), and answers to clicks made on it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, Respond

from bot.background import later
from domain.clock import utcnow
from services import home
from services.deps import Deps

log = logging.getLogger(__name__)


def from_home(body: dict) -> bool:
    """Whether a click came from a Home tab (its payload has a view of type home and no response_url)."""
    view = body.get("view")
    return isinstance(view, dict) and view.get("type") == "home"


def responder(deps: Deps, body: dict, respond: Respond | None) -> Callable[..., Any]:
    """Where to answer a click: its response_url, or, for a click on the Home tab (which has none), the tab itself."""
    if respond is not None and not from_home(body):
        return respond
    user = body["user"]["id"]

    def on_home(*, text: str = "", **_: Any) -> None:
        home.publish(deps, user, utcnow(), notice=text)

    return on_home


def refresh_clicker(deps: Deps, body: dict) -> None:
    """After a decision made on the Home tab, show the clicker their tab as it is now."""
    if from_home(body):
        home.publish(deps, body["user"]["id"], utcnow())


def register(app: App, deps: Deps) -> None:
    """Attach the app_home_opened listener."""

    @app.event("app_home_opened")
    def opened(ack: Ack, event: dict) -> None:
        ack()
        user = event.get("user")
        # The event also fires for the Messages tab; only the Home tab is ours to draw.
        if event.get("tab") == "home" and isinstance(user, str):
            later(home.publish, deps, user, utcnow())
