"""Button clicks: open in Stripe, request a refund, approve, reject, take a dispute, refund a fraud warning."""

from __future__ import annotations

import logging

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot import ids, request_blocks
from domain.clock import utcnow
from domain.errors import DeskError
from domain.policy import refusal_to_decide, refusal_to_refund
from services import lookup, oncall, refund_requests
from services.deps import Deps
from store import db
from store import requests as request_store

log = logging.getLogger(__name__)


def _ephemeral(respond: Respond, text: str) -> None:
    respond(response_type="ephemeral", replace_original=False, text=text)


def _request_id(body: dict) -> int | None:
    value = (body.get("actions") or [{}])[0].get("value", "")
    return int(value) if value.isdigit() else None


def register(app: App, deps: Deps) -> None:
    """Attach block_actions listeners. Every decision is checked here, whatever the buttons showed."""

    # Link buttons still send an interaction; acknowledging it keeps Slack from showing an error.
    @app.action(ids.OPEN_IN_STRIPE)
    def open_in_stripe(ack: Ack) -> None:
        ack()

    def just_ack(ack: Ack) -> None:
        ack()

    def open_request_modal(body: dict, respond: Respond, client: WebClient) -> None:
        user = body["user"]["id"]
        payment_id = (body.get("actions") or [{}])[0].get("value", "")
        try:
            if not deps.roles.roles(user).requester:
                _ephemeral(respond, "You are not allowed to ask for refunds (see REQUESTERS); ask someone who is.")
                return
            view = lookup.from_store(deps.pool, payment_id)
        except DeskError as exc:
            _ephemeral(respond, exc.message)
            return
        if view is None:
            _ephemeral(respond, f"`{payment_id}` is not in our records any more; look it up again.")
            return
        refusal = refusal_to_refund(view, None)
        if refusal:
            _ephemeral(respond, refusal)
            return
        channel = (body.get("channel") or {}).get("id")
        client.views_open(trigger_id=body["trigger_id"], view=request_blocks.request_modal(view, channel=channel))

    def approve(body: dict, respond: Respond) -> None:
        user = body["user"]["id"]
        request_id = _request_id(body)
        if request_id is None:
            _ephemeral(respond, "That button does not name a request.")
            return
        try:
            roles = deps.roles.roles(user)
            req = refund_requests.approve(deps.requests, request_id, user=user, roles=roles, now=utcnow())
        except DeskError as exc:
            _ephemeral(respond, exc.message)
            return
        if req.status == "approved":
            refund_requests.execute(deps.requests, req.id, now=utcnow())

    def open_reject_modal(body: dict, respond: Respond, client: WebClient) -> None:
        user = body["user"]["id"]
        request_id = _request_id(body)
        try:
            roles = deps.roles.roles(user)
            with db.connection(deps.pool) as conn:
                req = request_store.get(conn, request_id) if request_id is not None else None
        except DeskError as exc:
            _ephemeral(respond, exc.message)
            return
        if req is None:
            _ephemeral(respond, "That request does not exist.")
            return
        refusal = refusal_to_decide(user, roles, req.requested_by, req.status, ())
        if refusal:
            _ephemeral(respond, refusal)
            return
        client.views_open(trigger_id=body["trigger_id"], view=request_blocks.reject_modal(req))

    def assign_dispute(body: dict, respond: Respond) -> None:
        user = body["user"]["id"]
        dispute_id = (body.get("actions") or [{}])[0].get("value", "")
        _ephemeral(respond, oncall.assign_dispute(deps.pool, deps.settings, dispute_id, user, utcnow()))

    def refund_for_fraud_warning(body: dict, respond: Respond) -> None:
        user = body["user"]["id"]
        payment_id, _, warning = (body.get("actions") or [{}])[0].get("value", "").partition("|")
        try:
            roles = deps.roles.roles(user)
            req = refund_requests.ask(deps.requests, payment_id=payment_id, amount_text=None, reason="fraudulent",
                                      note=f"Early fraud warning {warning}: refunding to avoid a dispute.",
                                      user=user, roles=roles, via="fraud_warning", now=utcnow())
        except DeskError as exc:
            _ephemeral(respond, f"Not requested: {exc.message}")
            return
        _ephemeral(respond, request_blocks.filed_text(req, deps.settings))
        if req.status == "approved":
            done = refund_requests.execute(deps.requests, req.id, now=utcnow())
            if done is not None:
                _ephemeral(respond, request_blocks.outcome_text(done))

    app.action(ids.ASSIGN_DISPUTE)(ack=just_ack, lazy=[assign_dispute])
    app.action(ids.EFW_REFUND)(ack=just_ack, lazy=[refund_for_fraud_warning])
    app.action(ids.REQUEST_REFUND)(ack=just_ack, lazy=[open_request_modal])
    app.action(ids.APPROVE_REQUEST)(ack=just_ack, lazy=[approve])
    app.action(ids.REJECT_REQUEST)(ack=just_ack, lazy=[open_reject_modal])
