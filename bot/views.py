"""Modal submissions: field errors go back into the modal; nothing is half-applied."""

from __future__ import annotations

import logging

from slack_bolt import Ack, App, BoltContext

from bot import ids
from domain.clock import utcnow
from domain.errors import DeskError
from services import refund_requests
from services.deps import Deps

log = logging.getLogger(__name__)

_EXECUTE = "refund_desk_execute"


def _value(view: dict, block: str) -> str | None:
    state = view.get("state", {}).get("values", {}).get(block, {}).get(ids.INPUT, {})
    if state.get("type") == "static_select":
        return (state.get("selected_option") or {}).get("value")
    return state.get("value")


def register(app: App, deps: Deps) -> None:
    """Attach view_submission listeners."""

    def submit_request(ack: Ack, body: dict, view: dict, context: BoltContext) -> None:
        user = body["user"]["id"]
        payment_id = (view.get("private_metadata") or "").split("|", 1)[0]
        amount = (_value(view, ids.AMOUNT_BLOCK) or "").strip()
        reason = _value(view, ids.REASON_BLOCK) or "requested_by_customer"
        if reason not in {"requested_by_customer", "duplicate", "fraudulent"}:
            ack(response_action="errors", errors={ids.REASON_BLOCK: "Pick one of the reasons."})
            return
        if not amount:
            ack(response_action="errors", errors={ids.AMOUNT_BLOCK: "How much? Write an amount like 12.50."})
            return
        try:
            roles = deps.roles.roles(user)
            req = refund_requests.ask(deps.requests, payment_id=payment_id, amount_text=amount, reason=reason,
                                      note=(_value(view, ids.NOTE_BLOCK) or "").strip() or None, user=user,
                                      roles=roles, via="modal", now=utcnow())
        except DeskError as exc:
            # The first field is where a person looks; the note at the bottom is easy to miss.
            ack(response_action="errors", errors={ids.AMOUNT_BLOCK: exc.message[:150]})
            return
        ack()
        if req.status == "approved":
            context[_EXECUTE] = req.id

    def execute_after(context: BoltContext) -> None:
        if context.get(_EXECUTE):
            refund_requests.execute(deps.requests, context[_EXECUTE], now=utcnow())

    def submit_reject(ack: Ack, body: dict, view: dict) -> None:
        user = body["user"]["id"]
        metadata = view.get("private_metadata") or ""
        reason = (_value(view, ids.REJECT_REASON_BLOCK) or "").strip()
        if not metadata.isdigit():
            ack(response_action="errors", errors={ids.REJECT_REASON_BLOCK: "This form lost its request; reopen it."})
            return
        try:
            roles = deps.roles.roles(user)
            refund_requests.reject(deps.requests, int(metadata), user=user, roles=roles, reason=reason, now=utcnow())
        except DeskError as exc:
            ack(response_action="errors", errors={ids.REJECT_REASON_BLOCK: exc.message[:150]})
            return
        ack()

    app.view(ids.REQUEST_MODAL)(ack=submit_request, lazy=[execute_after])
    app.view(ids.REJECT_MODAL)(submit_reject)
