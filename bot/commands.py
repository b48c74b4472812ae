"""The `/refunds` slash command: parse, answer from the store at once, or work after the ack."""

from __future__ import annotations

import logging

from slack_bolt import Ack, App, Respond

from bot import finance, history
from bot.background import later
from domain.clock import utcnow
from domain.commands import (
    Disputes,
    Export,
    Help,
    History,
    Lookup,
    Mine,
    Pending,
    Recon,
    RequestRefund,
    ShowRequest,
    Stats,
    parse,
)
from domain.errors import DatabaseUnavailable, DeskError, NotFound
from domain.models import Draft
from messages import blocks
from messages import requests as request_blocks
from services import lookup, refund_requests
from services.deps import Deps

log = logging.getLogger(__name__)

COMMAND = "/refunds"


def register(app: App, deps: Deps) -> None:
    """Attach the /refunds listeners."""

    def answer(ack: Ack, command: dict, respond: Respond) -> None:
        cmd = parse(command.get("text"))
        if isinstance(cmd, Help):
            ack(response_type="ephemeral", text="How to use /refunds", blocks=blocks.usage_blocks(cmd.problem))
        elif isinstance(cmd, Lookup | Pending) and (refusal := history.viewer_refusal(deps, command["user_id"])):
            ack(response_type="ephemeral", text=refusal)
        elif isinstance(cmd, Lookup):
            _lookup(ack, cmd, respond)
        elif isinstance(cmd, RequestRefund):
            # Roles may need Slack and the payment may need Stripe: after the ack.
            ack(response_type="ephemeral", text=f"Checking `{cmd.payment_id}` for a refund request…")
            later(_request, respond, cmd, command["user_id"])
        elif isinstance(cmd, Pending):
            ack(
                response_type="ephemeral",
                text="Open refund requests",
                blocks=request_blocks.pending_blocks(refund_requests.open_requests(deps.pool), now=utcnow()),
            )
        elif isinstance(cmd, (ShowRequest, Mine, History, Disputes)):
            history.answer(ack, respond, cmd, command["user_id"], deps)
        elif isinstance(cmd, (Recon, Export)):
            finance.answer(ack, respond, cmd, command["user_id"], deps)
        elif isinstance(cmd, Stats):
            since, rows = refund_requests.stats(deps.pool, cmd.period, utcnow())
            ack(
                response_type="ephemeral",
                text="Refund request stats",
                blocks=request_blocks.stats_blocks(rows, cmd.period, since),
            )

    def _lookup(ack: Ack, cmd: Lookup, respond: Respond) -> None:
        try:
            view = lookup.from_store(deps.pool, cmd.stripe_id)
        except DatabaseUnavailable:
            log.warning("database unavailable; looking up %s in Stripe only", cmd.stripe_id)
            view = None
        if view is not None:
            ack(
                response_type="ephemeral",
                text=blocks.payment_text(view),
                blocks=blocks.payment_blocks(view, now=utcnow()),
            )
            return
        # Not stored yet: acknowledge now and answer through response_url once Stripe has spoken,
        # so Slack's 3-second limit never passes while Stripe is slow.
        ack(response_type="ephemeral", text=f"Looking up `{cmd.stripe_id}` in Stripe…")
        later(_fetch, respond, cmd.stripe_id, cmd.account)

    def _fetch(respond: Respond, stripe_id: str, account: str | None = None) -> None:
        try:
            view = lookup.from_stripe(
                deps.pool,
                deps.stripe,
                stripe_id,
                now=utcnow(),
                account=account,
                search_accounts=deps.settings.connect_lookup_accounts,
            )
        except NotFound:
            respond(
                replace_original=True,
                response_type="ephemeral",
                text=f"No payment, refund or dispute `{stripe_id}` was found in Stripe.",
            )
            return
        except DeskError as exc:
            respond(
                replace_original=True, response_type="ephemeral", text=f"Could not look up `{stripe_id}`: {exc.message}"
            )
            return
        respond(
            replace_original=True,
            response_type="ephemeral",
            text=blocks.payment_text(view),
            blocks=blocks.payment_blocks(view, now=utcnow()),
        )

    def _request(respond: Respond, cmd: RequestRefund, user: str) -> None:
        try:
            roles = deps.roles.for_request(user)
            result = refund_requests.ask(
                deps.requests,
                payment_id=cmd.payment_id,
                amount_text=cmd.amount_text,
                reason=cmd.reason,
                note=cmd.note,
                user=user,
                roles=roles,
                via="slash_command",
                now=utcnow(),
                account=cmd.account,
            )
        except NotFound:
            respond(
                replace_original=True,
                response_type="ephemeral",
                text=f"No payment `{cmd.payment_id}` was found in Stripe.",
            )
            return
        except DeskError as exc:
            respond(replace_original=True, response_type="ephemeral", text=f"Not requested: {exc.message}")
            return
        if isinstance(result, Draft):
            respond(
                replace_original=True,
                response_type="ephemeral",
                text=request_blocks.confirm_text(result),
                blocks=request_blocks.confirm_blocks(result),
            )
            return
        respond(
            replace_original=True,
            response_type="ephemeral",
            text=request_blocks.filed_text(result, deps.settings.approvals_channel),
        )

    app.command(COMMAND)(answer)
