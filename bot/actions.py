"""Button clicks."""

from __future__ import annotations

from slack_bolt import Ack, App

from bot import ids
from services.deps import Deps


def register(app: App, deps: Deps) -> None:
    """Attach block_actions listeners."""

    # Link buttons still send an interaction; acknowledging it keeps Slack from showing an error.
    @app.action(ids.OPEN_IN_STRIPE)
    def open_in_stripe(ack: Ack) -> None:
        ack()
