"""Button clicks: open in Stripe, request a refund, confirm it, approve, reject, take a dispute, refund a warning."""

from __future__ import annotations

import logging
import re

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot import home
from domain.clock import utcnow
from domain.errors import DeskError
from domain.models import Draft, RefundRequest
from domain.policy import refusal_to_refund
from messages import ids
from messages import requests as request_blocks
from services import incidents, lookup, oncall, refund_requests
from services.deps import Deps

log = logging.getLogger(__name__)

_NUMBER = re.compile(r"[0-9]{1,12}")


def _ephemeral(respond: Respond, text: str, *, replace: bool = False, blocks: list | None = None) -> None:
    respond(response_type="ephemeral", replace_original=replace, text=text, blocks=blocks)


def action_value(body: dict) -> str:
    """The clicked button's value, or "" when the payload has no usable action."""
    actions = body.get("actions")
    first = actions[0] if isinstance(actions, list) and actions else None
    value = first.get("value") if isinstance(first, dict) else None
    return value if isinstance(value, str) else ""


def _request_id(body: dict) -> int | None:
    value = action_value(body)
    return int(value) if _NUMBER.fullmatch(value) else None


def register(app: App, deps: Deps) -> None:
    """Attach block_actions listeners. Every decision is checked here, whatever the buttons showed."""

    # Link buttons still send an interaction; acknowledging it keeps Slack from showing an error.
    @app.action(ids.OPEN_IN_STRIPE)
    def open_in_stripe(ack: Ack) -> None:
        ack()

    def just_ack(ack: Ack) -> None:
        ack()

    def _filed(respond: Respond, result: RefundRequest | Draft) -> None:
        """Tell the person what became of their request; a refund that runs at once asks to be confirmed."""
        if isinstance(result, Draft):
            _ephemeral(respond, request_blocks.confirm_text(result), blocks=request_blocks.confirm_blocks(result))
        else:
            _ephemeral(respond, request_blocks.filed_text(result, deps.settings.approvals_channel))

    def open_request_modal(body: dict, respond: Respond, client: WebClient) -> None:
        user = body["user"]["id"]
        payment_id = action_value(body)
        try:
            if not deps.roles.for_request(user).requester:
                _ephemeral(respond, "You are not allowed to ask for refunds (see REQUESTERS); ask someone who is.")
                return
            view = lookup.from_store(deps.pool, payment_id) if payment_id else None
        except DeskError as exc:
            _ephemeral(respond, exc.message)
            return
        if view is None:
            _ephemeral(respond, f"`{payment_id[:40]}` is not in our records any more; look it up again.")
            return
        refusal = refusal_to_refund(view, None)
        if refusal:
            _ephemeral(respond, refusal)
            return
        channel = (body.get("channel") or {}).get("id")
        client.views_open(trigger_id=body["trigger_id"], view=request_blocks.request_modal(view, channel=channel))

    def confirm_refund(body: dict, respond: Respond) -> None:
        user = body["user"]["id"]
        try:
            roles = deps.roles.for_request(user)
            req = refund_requests.confirm(deps.requests, action_value(body), user=user, roles=roles, now=utcnow())
        except DeskError as exc:
            _ephemeral(respond, f"Not refunded: {exc.message}", replace=True)
            return
        _ephemeral(respond, request_blocks.filed_text(req, deps.settings.approvals_channel), replace=True)
        done = refund_requests.run_approved(deps.requests, req.id, now=utcnow())
        if done is not None:
            _ephemeral(respond, request_blocks.outcome_text(done))

    def cancel_refund(body: dict, respond: Respond) -> None:
        user = body["user"]["id"]
        if refund_requests.cancel(deps.requests, action_value(body), user=user):
            _ephemeral(respond, "Canceled: nothing was refunded.", replace=True)
        else:
            _ephemeral(respond, "Nothing to cancel: that refund was already confirmed or canceled.")

    def approve(body: dict, respond: Respond) -> None:
        user = body["user"]["id"]
        respond = home.responder(deps, body, respond)  # a Home-tab click is answered on the tab
        request_id = _request_id(body)
        if request_id is None:
            _ephemeral(respond, "That button does not name a request.")
            return
        try:
            roles = deps.roles.for_decision(user)
            req = refund_requests.approve(deps.requests, request_id, user=user, roles=roles, now=utcnow())
        except DeskError as exc:
            _ephemeral(respond, exc.message)
            return
        refund_requests.run_approved(deps.requests, req.id, now=utcnow())
        home.refresh_clicker(deps, body)

    def open_reject_modal(body: dict, respond: Respond, client: WebClient) -> None:
        user = body["user"]["id"]
        respond = home.responder(deps, body, respond)
        request_id = _request_id(body)
        if request_id is None:
            _ephemeral(respond, "That button does not name a request.")
            return
        try:
            roles = deps.roles.for_decision(user)
            req = refund_requests.for_rejection(deps.requests, request_id, user=user, roles=roles)
        except DeskError as exc:
            _ephemeral(respond, exc.message)
            return
        client.views_open(trigger_id=body["trigger_id"], view=request_blocks.reject_modal(req))

    def oncall_refused(respond: Respond, user: str, what: str) -> bool:
        """Say so and return True unless the user is an approver, an admin or in ONCALL_GROUP."""
        try:
            allowed = deps.roles.may_take_disputes(user)
        except DeskError as exc:
            _ephemeral(respond, exc.message)
            return True
        if not allowed:
            _ephemeral(respond, f"Only approvers, admins and the on-call group can {what}.")
        return not allowed

    def assign_dispute(body: dict, respond: Respond) -> None:
        user = body["user"]["id"]
        if oncall_refused(respond, user, "take a dispute"):
            return
        _ephemeral(respond, oncall.assign_dispute(deps.pool, deps.settings, action_value(body)[:255], user, utcnow()))

    def refund_for_fraud_warning(body: dict, respond: Respond) -> None:
        user = body["user"]["id"]
        payment_id, _, warning = action_value(body).partition("|")
        try:
            roles = deps.roles.for_request(user)
            result = refund_requests.ask(
                deps.requests,
                payment_id=payment_id,
                amount_text=None,
                reason="fraudulent",
                note=f"Early fraud warning {warning[:255]}: refunding to avoid a dispute.",
                user=user,
                roles=roles,
                via="fraud_warning",
                now=utcnow(),
            )
        except DeskError as exc:
            _ephemeral(respond, f"Not requested: {exc.message}")
            return
        _filed(respond, result)

    def acknowledge_incident(body: dict, respond: Respond) -> None:
        user = body["user"]["id"]
        value = action_value(body)
        if not _NUMBER.fullmatch(value):
            _ephemeral(respond, "That button does not name an incident.")
            return
        if oncall_refused(respond, user, "acknowledge an incident"):
            return
        _ephemeral(respond, incidents.acknowledge(deps.pool, deps.settings, int(value), user, utcnow()))

    app.action(ids.ACK_INCIDENT)(ack=just_ack, lazy=[acknowledge_incident])
    app.action(ids.ASSIGN_DISPUTE)(ack=just_ack, lazy=[assign_dispute])
    app.action(ids.EFW_REFUND)(ack=just_ack, lazy=[refund_for_fraud_warning])
    app.action(ids.REQUEST_REFUND)(ack=just_ack, lazy=[open_request_modal])
    app.action(ids.CONFIRM_REFUND)(ack=just_ack, lazy=[confirm_refund])
    app.action(ids.CANCEL_REFUND)(ack=just_ack, lazy=[cancel_refund])
    app.action(ids.APPROVE_REQUEST)(ack=just_ack, lazy=[approve])
    app.action(ids.REJECT_REQUEST)(ack=just_ack, lazy=[open_reject_modal])
