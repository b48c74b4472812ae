"""The `/refunds` slash command: parse, answer from the store at once, or fetch from Stripe after the ack."""

from __future__ import annotations

import logging

from slack_bolt import Ack, App, BoltContext, Respond

from bot import blocks
from domain.clock import utcnow
from domain.commands import Help, Lookup, parse
from domain.errors import DatabaseUnavailable, DeskError, NotFound
from services import lookup
from services.deps import Deps

log = logging.getLogger(__name__)

COMMAND = "/refunds"
_FETCH = "refund_desk_fetch"  # context key telling the lazy listener what to fetch


def register(app: App, deps: Deps) -> None:
    """Attach the /refunds listeners."""

    def answer(ack: Ack, command: dict, context: BoltContext) -> None:
        cmd = parse(command.get("text"))
        if isinstance(cmd, Help):
            ack(response_type="ephemeral", text="How to use /refunds",
                blocks=blocks.usage_blocks(cmd.problem))
            return
        assert isinstance(cmd, Lookup)
        try:
            view = lookup.from_store(deps.pool, cmd.stripe_id)
        except DatabaseUnavailable:
            log.warning("database unavailable; looking up %s in Stripe only", cmd.stripe_id)
            view = None
        if view is not None:
            ack(response_type="ephemeral", text=blocks.payment_text(view),
                blocks=blocks.payment_blocks(view, now=utcnow()))
            return
        # Not stored yet: acknowledge now and answer through response_url once Stripe has spoken,
        # so Slack's 3-second limit never passes while Stripe is slow.
        context[_FETCH] = cmd.stripe_id
        ack(response_type="ephemeral", text=f"Looking up `{cmd.stripe_id}` in Stripe…")

    def fetch(respond: Respond, context: BoltContext) -> None:
        stripe_id = context.get(_FETCH)
        if not stripe_id:
            return
        try:
            view = lookup.from_stripe(deps.pool, deps.stripe, stripe_id, now=utcnow())
        except NotFound:
            respond(replace_original=True, response_type="ephemeral",
                    text=f"No payment, refund or dispute `{stripe_id}` was found in Stripe.")
            return
        except DeskError as exc:
            respond(replace_original=True, response_type="ephemeral",
                    text=f"Could not look up `{stripe_id}`: {exc.message}")
            return
        respond(replace_original=True, response_type="ephemeral", text=blocks.payment_text(view),
                blocks=blocks.payment_blocks(view, now=utcnow()))

    app.command(COMMAND)(ack=answer, lazy=[fetch])
