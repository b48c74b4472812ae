"""Modal submissions: field errors go back into the modal; nothing is half-applied."""

from __future__ import annotations

import logging
import re

from slack_bolt import Ack, App, BoltContext

from domain.clock import utcnow
from domain.errors import DeskError
from domain.models import Draft
from messages import ids
from messages import requests as request_blocks
from services import refund_requests
from services.deps import Deps

log = logging.getLogger(__name__)

_EXECUTE = "refund_desk_execute"
_NUMBER = re.compile(r"[0-9]{1,12}")


def _value(view: dict, block: str) -> str | None:
    """A modal input's value; None when it is empty or the payload does not have the expected shape."""
    state = view.get("state") if isinstance(view, dict) else None
    values = state.get("values") if isinstance(state, dict) else None
    blocks = values.get(block) if isinstance(values, dict) else None
    field = blocks.get(ids.INPUT) if isinstance(blocks, dict) else None
    if not isinstance(field, dict):
        return None
    if field.get("type") == "static_select":
        option = field.get("selected_option")
        value = option.get("value") if isinstance(option, dict) else None
    else:
        value = field.get("value")
    return value if isinstance(value, str) else None


def _metadata(view: dict) -> str:
    value = view.get("private_metadata") if isinstance(view, dict) else None
    return value if isinstance(value, str) else ""


def register(app: App, deps: Deps) -> None:
    """Attach view_submission listeners."""

    def submit_request(ack: Ack, body: dict, view: dict, context: BoltContext) -> None:
        user = body["user"]["id"]
        payment_id = _metadata(view).split("|", 1)[0]
        amount = (_value(view, ids.AMOUNT_BLOCK) or "").strip()
        reason = _value(view, ids.REASON_BLOCK) or "requested_by_customer"
        if reason not in refund_requests.REASONS:
            ack(response_action="errors", errors={ids.REASON_BLOCK: "Pick one of the reasons."})
            return
        try:
            roles = deps.roles.for_request(user)
            # An empty amount asks for everything still refundable; the next step shows how much that is.
            result = refund_requests.ask(
                deps.requests,
                payment_id=payment_id,
                amount_text=amount or None,
                reason=reason,
                note=_value(view, ids.NOTE_BLOCK),
                user=user,
                roles=roles,
                via="modal",
                now=utcnow(),
            )
        except DeskError as exc:
            # The first field is where a person looks; the note at the bottom is easy to miss.
            ack(response_action="errors", errors={ids.AMOUNT_BLOCK: exc.message[:150]})
            return
        if isinstance(result, Draft):
            ack(response_action="update", view=request_blocks.confirm_modal(result))
            return
        ack()

    def submit_confirm(ack: Ack, body: dict, view: dict, context: BoltContext) -> None:
        user = body["user"]["id"]
        try:
            roles = deps.roles.for_request(user)
            req = refund_requests.confirm(deps.requests, _metadata(view), user=user, roles=roles, now=utcnow())
        except DeskError as exc:
            ack(response_action="update", view=request_blocks.problem_modal("Not refunded", exc.message))
            return
        ack()
        context[_EXECUTE] = req.id

    def execute_after(context: BoltContext) -> None:
        if context.get(_EXECUTE):
            refund_requests.run_approved(deps.requests, context[_EXECUTE], now=utcnow())

    def submit_reject(ack: Ack, body: dict, view: dict) -> None:
        user = body["user"]["id"]
        metadata = _metadata(view)
        reason = _value(view, ids.REJECT_REASON_BLOCK) or ""
        if not _NUMBER.fullmatch(metadata):
            ack(response_action="errors", errors={ids.REJECT_REASON_BLOCK: "This form lost its request; reopen it."})
            return
        try:
            roles = deps.roles.for_decision(user)
            refund_requests.reject(deps.requests, int(metadata), user=user, roles=roles, reason=reason, now=utcnow())
        except DeskError as exc:
            ack(response_action="errors", errors={ids.REJECT_REASON_BLOCK: exc.message[:150]})
            return
        ack()

    app.view(ids.REQUEST_MODAL)(submit_request)
    app.view(ids.CONFIRM_MODAL)(ack=submit_confirm, lazy=[execute_after])
    app.view(ids.REJECT_MODAL)(submit_reject)
