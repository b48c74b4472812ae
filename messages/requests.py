"""Block Kit for refund requests: the approval message, its thread notes, the modals. Pure."""

from __future__ import annotations

from datetime import datetime

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from domain.history import is_api_requester
from domain.links import dashboard_url
from domain.models import Draft, PaymentView, RefundRequest, refundable
from domain.money import display_exponent, format_amount, to_major
from messages import ids
from messages.blocks import escape, slack_date, to_dicts

REASON_LABELS = {
    "requested_by_customer": "Requested by the customer",
    "duplicate": "Duplicate payment",
    "fraudulent": "Fraudulent",
}
STATUS_LINE = {
    "pending": "⏳ Waiting for approval",
    "approved": "👍 Approved; creating the refund in Stripe",
    "sent": "📨 Sent to Stripe; waiting for the outcome",
    "succeeded": "✅ Refunded",
    "failed": "❌ Failed",
    "canceled": "⊘ Canceled in Stripe",
    "rejected": "🚫 Rejected",
    "expired": "⌛ Expired without a decision",
}


def _money(req: RefundRequest) -> str:
    return format_amount(req.amount, req.currency)


def requester_name(requested_by: str) -> str:
    """A requester as people read it: a Slack mention, or the API key (another system) that filed it."""
    if is_api_requester(requested_by):
        return f"API key `{escape(requested_by.removeprefix('api:'))}`"
    return f"<@{requested_by}>"


def approval_message(req: RefundRequest, view: PaymentView | None, *, livemode: bool) -> dict:
    """The approval-channel message as it should look now."""
    p = view.payment if view else None
    left_after = refundable(view) - (req.amount if req.status == "pending" else 0) if view else None
    fields = [
        f"*Amount*\n{_money(req)}",
        f"*Leaves refundable*\n{format_amount(max(left_after, 0), req.currency) if left_after is not None else '—'}",
        f"*Customer*\n{escape(p.customer_email) if p and p.customer_email else '—'}",
        f"*Payment*\n<{dashboard_url(req.payment_id, livemode=livemode, account=req.account)}|{req.payment_id}>",
        f"*Reason*\n{REASON_LABELS.get(req.reason, req.reason)}",
        f"*Asked by*\n{requester_name(req.requested_by)}",
    ]
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=f"*Refund request #{req.id}: {_money(req)}*")),
        SectionBlock(fields=[MarkdownTextObject(text=f) for f in fields]),
    ]
    if req.note:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=f"> {escape(req.note)[:1500]}")))
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=_status_text(req))]))
    if req.status == "pending":
        who = escape(p.customer_email) if p and p.customer_email else req.payment_id
        blocks.append(
            ActionsBlock(
                block_id=f"decide:{req.id}",
                elements=[
                    ButtonElement(
                        text="Approve",
                        action_id=ids.APPROVE_REQUEST,
                        value=str(req.id),
                        style="primary",
                        confirm=ConfirmObject(
                            title="Approve this refund?",
                            text=f"Refund {_money(req)} to {who}. This moves money.",
                            confirm="Approve",
                            deny="Cancel",
                        ),
                    ),
                    ButtonElement(text="Reject", action_id=ids.REJECT_REQUEST, value=str(req.id), style="danger"),
                ],
            )
        )
    return {
        "text": f"Refund request #{req.id}: {_money(req)} on {req.payment_id} — {req.status}",
        "blocks": to_dicts(blocks),
    }


def _status_text(req: RefundRequest) -> str:
    line = STATUS_LINE.get(req.status, req.status)
    if req.status == "pending" and req.approvals_needed == 2:
        line += f" ({len(req.approvals)} of 2 approvals)"
    if req.decided_by and req.decided_at and req.status != "pending":
        verb = "rejected" if req.status == "rejected" else "approved"
        if req.decided_by == req.requested_by and req.approvals_needed == 0:
            verb = "ran at once (an approver's request within the threshold)"
            line += f" · {verb} · {slack_date(req.decided_at)}"
        else:
            line += f" · {verb} by <@{req.decided_by}> {slack_date(req.decided_at)}"
    if req.reject_reason:
        line += f" · “{escape(req.reject_reason)[:300]}”"
    if req.stripe_refund_id:
        line += f" · `{req.stripe_refund_id}`"
    if req.failure_message:
        line += f" · {escape(req.failure_message)[:300]}"
    if req.status == "pending":
        line += f" · expires {slack_date(req.expires_at)}"
    return line


def requester_note(req: RefundRequest, what: str) -> dict:
    """A direct message to the person who asked."""
    return {"text": f"Your refund request #{req.id} ({_money(req)} on `{req.payment_id}`): {what}"}


def major_text(amount: int, currency: str) -> str:
    """An amount as a person types it in major units (no symbol, no grouping)."""
    return f"{to_major(amount, currency):.{display_exponent(currency)}f}"


def request_modal(view: PaymentView, *, channel: str | None) -> View:
    """The "Request refund" modal, prefilled with everything still refundable."""
    p = view.payment
    left = refundable(view)
    meta = f"{p.id}|{channel or ''}"
    summary = (
        f"`{p.id}` · {format_amount(p.amount_captured, p.currency)} captured · "
        f"{format_amount(left, p.currency)} refundable"
    )
    if p.customer_email:
        summary += f" · {escape(p.customer_email)}"
    return View(
        type="modal",
        callback_id=ids.REQUEST_MODAL,
        private_metadata=meta,
        title="Request a refund",
        submit="Request",
        close="Cancel",
        blocks=[
            SectionBlock(text=MarkdownTextObject(text=summary)),
            InputBlock(
                block_id=ids.AMOUNT_BLOCK,
                label=f"Amount ({p.currency.upper()})",
                hint=f"At most {format_amount(left, p.currency)}.",
                element=PlainTextInputElement(action_id=ids.INPUT, initial_value=major_text(left, p.currency)),
            ),
            InputBlock(
                block_id=ids.REASON_BLOCK,
                label="Reason",
                element=StaticSelectElement(
                    action_id=ids.INPUT,
                    options=[Option(value=k, text=v) for k, v in REASON_LABELS.items()],
                    initial_option=Option(value="requested_by_customer", text=REASON_LABELS["requested_by_customer"]),
                ),
            ),
            InputBlock(
                block_id=ids.NOTE_BLOCK,
                label="Note for the approver",
                optional=True,
                element=PlainTextInputElement(action_id=ids.INPUT, multiline=True, max_length=2000),
            ),
        ],
    )


def reject_modal(req: RefundRequest) -> View:
    """The modal asking why a request is rejected."""
    return View(
        type="modal",
        callback_id=ids.REJECT_MODAL,
        private_metadata=str(req.id),
        title="Reject refund request",
        submit="Reject",
        close="Cancel",
        blocks=[
            SectionBlock(
                text=MarkdownTextObject(
                    text=f"Request #{req.id}: {_money(req)} on `{req.payment_id}`, "
                    f"asked by {requester_name(req.requested_by)}."
                )
            ),
            InputBlock(
                block_id=ids.REJECT_REASON_BLOCK,
                label="Why? (the requester sees this)",
                element=PlainTextInputElement(action_id=ids.INPUT, multiline=True, min_length=3, max_length=500),
            ),
        ],
    )


def pending_blocks(requests: list[RefundRequest], *, now: datetime) -> list[Block]:
    """The answer to /refunds pending."""
    if not requests:
        return [SectionBlock(text=MarkdownTextObject(text="No open refund requests. 🎉"))]
    lines = [
        f"#{r.id} {_money(r)} on `{r.payment_id}` · {STATUS_LINE.get(r.status, r.status)} · "
        f"asked by {requester_name(r.requested_by)} {slack_date(r.created_at)}"
        for r in requests
    ]
    text = f"*Open refund requests ({len(requests)})*\n" + "\n".join(lines)
    return [SectionBlock(text=MarkdownTextObject(text=text[:2900]))]


def stats_blocks(rows: list[tuple[str, str, int, int]], period: str, since: datetime) -> list[Block]:
    """The answer to /refunds stats."""
    if not rows:
        return [SectionBlock(text=MarkdownTextObject(text=f"No refund requests since {slack_date(since)} ({period})."))]
    lines = [
        f"{STATUS_LINE.get(status, status)}: {count} · {format_amount(total, currency)}"
        for status, currency, count, total in rows
    ]
    return [
        SectionBlock(
            text=MarkdownTextObject(text=f"*Refund requests since {slack_date(since)} ({period})*\n" + "\n".join(lines))
        )
    ]


def filed_text(req: RefundRequest, approvals_channel: str | None) -> str:
    """What the requester sees right after asking."""
    if req.status == "approved":
        return (
            f"Request #{req.id}: {_money(req)} on `{req.payment_id}` runs at once (you are an approver and it "
            "is within the threshold). Creating the refund in Stripe…"
        )
    where = f"<#{approvals_channel}>" if approvals_channel else "the approvals channel"
    needs = "two approvers" if req.approvals_needed == 2 else "an approver"
    return f"Request #{req.id}: {_money(req)} on `{req.payment_id}` is waiting for {needs} in {where}."


def outcome_text(req: RefundRequest) -> str:
    """Where an executed request ended (for the person who started it)."""
    line = STATUS_LINE.get(req.status, req.status)
    extra = f" `{req.stripe_refund_id}`" if req.stripe_refund_id else ""
    if req.failure_message:
        extra += f": {req.failure_message}"
    return f"Request #{req.id}: {line}{extra}"


def confirm_text(draft: Draft) -> str:
    """The question a requester answers before a refund runs at once."""
    return (
        f"Refund {format_amount(draft.amount, draft.currency)} on `{draft.payment_id}` now? You are an approver "
        "and it is within the threshold, so nobody else will check it: it runs as soon as you confirm."
    )


def _draft_summary(draft: Draft) -> str:
    lines = [
        f"*Refund {format_amount(draft.amount, draft.currency)} on `{draft.payment_id}` now?*",
        f"Reason: {REASON_LABELS.get(draft.reason, draft.reason)}",
    ]
    if draft.note:
        lines.append(f"> {escape(draft.note)[:500]}")
    lines.append(
        "You are an approver and it is within the threshold, so nobody else will check it: "
        "it runs as soon as you confirm."
    )
    return "\n".join(lines)


def confirm_blocks(draft: Draft) -> list[dict]:
    """An ephemeral confirmation with the exact amount, for the command and one-click refunds."""
    money = format_amount(draft.amount, draft.currency)
    return to_dicts(
        [
            SectionBlock(text=MarkdownTextObject(text=_draft_summary(draft))),
            ActionsBlock(
                block_id=f"confirm:{draft.id}",
                elements=[
                    ButtonElement(
                        text=f"Refund {money}", action_id=ids.CONFIRM_REFUND, value=str(draft.id), style="danger"
                    ),
                    ButtonElement(text="Cancel", action_id=ids.CANCEL_REFUND, value=str(draft.id)),
                ],
            ),
        ]
    )


def confirm_modal(draft: Draft) -> View:
    """The request modal's second step when the refund would run at once: the exact amount, then Refund."""
    money = format_amount(draft.amount, draft.currency)
    return View(
        type="modal",
        callback_id=ids.CONFIRM_MODAL,
        private_metadata=str(draft.id),
        title="Confirm the refund",
        submit=f"Refund {money}" if len(money) <= 17 else "Refund now",
        close="Cancel",
        blocks=[SectionBlock(text=MarkdownTextObject(text=_draft_summary(draft)))],
    )


def problem_modal(title: str, text: str) -> View:
    """A modal that only says what went wrong (a step with no field to attach the error to)."""
    return View(
        type="modal", title=title[:24], close="Close", blocks=[SectionBlock(text=MarkdownTextObject(text=text[:2900]))]
    )


# --- thread notes and direct messages, by what just happened to a request --------------------------------


def step_notes(
    step: str,
    req: RefundRequest,
    *,
    user: str | None = None,
    reason: str | None = None,
    refund_id: str | None = None,
    message: str | None = None,
    approvals_channel: str | None = None,
) -> tuple[str | None, str | None]:
    """What the approval thread and the requester are told when a request takes a step: (thread, dm)."""
    money = _money(req)
    why = f": {escape(message)}" if message else ""
    if step == "filed":
        where = f"<#{approvals_channel}>" if approvals_channel else "the approvals channel"
        if req.approvals_needed == 0:
            return None, "approved at once (you are an approver and it is within the threshold); creating the refund."
        return None, f"waiting for approval in {where}."
    if step == "approved":
        return (
            f"👍 Approved by <@{user}>. Creating the refund in Stripe…",
            f"approved by <@{user}>; the refund is being created.",
        )
    if step == "approval_added":
        return f"👍 <@{user}> approved (1 of 2); a second approver is needed.", None
    if step == "rejected":
        return (f"🚫 Rejected by <@{user}>: {escape(reason or '')}", f"rejected by <@{user}>: “{escape(reason or '')}”")
    if step == "refused_by_stripe":
        return (f"❌ Stripe refused the refund{why}", f"Stripe refused the refund{why}")
    if step == "sent":
        return f"📨 Stripe accepted refund `{refund_id}` ({money}); it is pending.", None
    if step == "succeeded":
        return f"✅ Refund `{refund_id}` of {money} succeeded.", f"refunded ✅ (`{refund_id}`)."
    if step in {"failed", "canceled"}:
        return f"❌ Refund `{refund_id}` {step}{why}.", f"the refund {step}{why}."
    if step == "expired":
        return (
            "⌛ Expired: nobody approved or rejected it in time.",
            "expired without a decision; ask again if it is still needed.",
        )
    raise ValueError(f"no notes for request step {step!r}")


def already_decided(req: RefundRequest) -> str:
    """Why a decision on a request that is no longer pending changed nothing."""
    who = f" by <@{req.decided_by}>" if req.decided_by else ""
    return f"Request #{req.id} was already decided: {req.status}{who}. Nothing was changed."
