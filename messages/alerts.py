"""Block Kit for on-call: dispute and early-fraud-warning alerts, incident alerts. Pure."""

from __future__ import annotations

from datetime import datetime, timedelta

from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement, ContextBlock, MarkdownTextObject, SectionBlock

from domain.alerts import Window, relative
from domain.links import dashboard_url
from domain.models import Dispute, FraudWarning, PaymentView, Review
from domain.money import format_amount
from messages import ids
from messages.blocks import STATUS_ICON, _status, escape, slack_date, to_dicts

FRAUD_TYPES = {
    "card_never_received": "card never received",
    "fraudulent_card_application": "fraudulent card application",
    "made_with_counterfeit_card": "counterfeit card",
    "made_with_lost_card": "lost card",
    "made_with_stolen_card": "stolen card",
    "misc": "other",
    "unauthorized_use_of_card": "unauthorized use",
}


def _customer(view: PaymentView | None) -> str:
    return escape(view.payment.customer_email) if view and view.payment.customer_email else "—"


def dispute_message(d: Dispute, view: PaymentView | None, *, now: datetime) -> dict:
    """The dispute alert as it should look now."""
    inquiry = d.status.startswith("warning_")
    kind = "Inquiry" if inquiry else "Dispute"
    payment_id = d.payment_intent_id or d.charge_id or "?"
    fields = [
        f"*Status*\n{_status(d.status)}",
        f"*Amount*\n{format_amount(d.amount, d.currency)}",
        f"*Reason*\n{(d.reason or 'unknown').replace('_', ' ')}",
        f"*Customer*\n{_customer(view)}",
        f"*Payment*\n<{dashboard_url(payment_id, livemode=d.livemode, account=d.account)}|{payment_id}>",
        f"*Owner*\n{f'<@{d.owner}>' if d.owner else 'nobody yet'}",
    ]
    if d.evidence_due_by:
        due = f"{slack_date(d.evidence_due_by)} ({relative(d.evidence_due_by - now)})"
        if d.evidence_submitted:
            due += " · evidence submitted"
        fields.insert(2, f"*Evidence due*\n{due}")
    closed = d.status in {"won", "lost", "warning_closed", "prevented"}
    icon = STATUS_ICON.get(d.status, "✔️") if closed else ("❓" if inquiry else "🚨")
    blocks: list[Block] = [
        SectionBlock(
            text=MarkdownTextObject(text=f"*{icon} {kind} {format_amount(d.amount, d.currency)} on `{payment_id}`*")
        ),
        SectionBlock(fields=[MarkdownTextObject(text=f) for f in fields[:10]]),
        ContextBlock(elements=[MarkdownTextObject(text=f"`{d.id}` · opened {slack_date(d.stripe_created)}")]),
    ]
    buttons = [
        ButtonElement(
            text="Respond in Stripe",
            action_id=ids.OPEN_IN_STRIPE,
            url=dashboard_url(d.id, livemode=d.livemode, account=d.account),
        )
    ]
    if not d.owner and d.status not in {"won", "lost", "warning_closed", "prevented"}:
        buttons.insert(0, ButtonElement(text="Assign to me", action_id=ids.ASSIGN_DISPUTE, value=d.id, style="primary"))
    blocks.append(ActionsBlock(elements=buttons))
    return {
        "text": f"{kind} {format_amount(d.amount, d.currency)} on {payment_id}: {d.status}",
        "blocks": to_dicts(blocks),
    }


def dispute_change_note(before: Dispute | None, after: Dispute, event_type: str) -> str:
    """A thread reply telling what changed."""
    if event_type.endswith("funds_withdrawn"):
        return f"💸 Funds withdrawn: {format_amount(after.amount, after.currency)} (plus Stripe's dispute fee)."
    if event_type.endswith("funds_reinstated"):
        return f"💰 Funds reinstated: {format_amount(after.amount, after.currency)}."
    if before is None or before.status == after.status:
        if before is not None and after.evidence_submitted and not before.evidence_submitted:
            return "📎 Evidence submitted."
        return f"Updated: {_status(after.status)}."
    closed = after.status in {"won", "lost", "warning_closed", "prevented"}
    return f"{'Closed' if closed else 'Status'}: {_status(before.status)} → {_status(after.status)}"


def reminder_note(d: Dispute, kind: str, *, mention: str | None, now: datetime) -> dict:
    """The evidence-deadline reminder, broadcast to the channel from the alert's thread."""
    who = f"<@{d.owner}>" if d.owner else (mention or "Someone")
    due = d.evidence_due_by
    when = f"{slack_date(due)} ({relative(due - now)})" if due else "soon"
    take = "" if d.owner else " Nobody has taken it yet: click *Assign to me*."
    text = (
        f"⏰ {who}: evidence for `{d.id}` ({format_amount(d.amount, d.currency)}) is due {when}; "
        f"this is the {kind} reminder.{take}"
    )
    return {"text": text, "reply_broadcast": True}


def efw_message(efw: FraudWarning, view: PaymentView | None, *, refundable_now: bool) -> dict:
    """The early-fraud-warning alert."""
    payment_id = efw.payment_id or "?"
    fraud = FRAUD_TYPES.get(efw.fraud_type, efw.fraud_type.replace("_", " "))
    actionable = efw.actionable
    amount = format_amount(view.payment.amount_captured, view.payment.currency) if view else "—"
    lines = [
        f"*⚠️ Early fraud warning on `{payment_id}`: {fraud}*",
        f"Amount: {amount} · Customer: {_customer(view)}",
        "Actionable: yes — refunding now avoids a dispute and its fee"
        if actionable
        else "Actionable: no (already refunded or disputed)",
    ]
    buttons = [
        ButtonElement(
            text="Open in Stripe",
            action_id=ids.OPEN_IN_STRIPE,
            url=dashboard_url(payment_id, livemode=efw.livemode, account=efw.account),
        )
    ]
    if actionable and refundable_now:
        buttons.insert(
            0,
            ButtonElement(
                text="Refund to avoid a dispute",
                action_id=ids.EFW_REFUND,
                value=f"{payment_id}|{efw.id}",
                style="danger",
            ),
        )
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text="\n".join(lines))),
        ContextBlock(elements=[MarkdownTextObject(text=f"`{efw.id}`")]),
        ActionsBlock(elements=buttons),
    ]
    return {"text": f"Early fraud warning on {payment_id}: {fraud}", "blocks": to_dicts(blocks)}


def review_note(review: Review, opened: bool) -> dict:
    """A note about a Radar review opening or closing."""
    target = review.payment_id or "?"
    if opened:
        why = (review.opened_reason or "rule").replace("_", " ")
        return {"text": f"🔎 Radar review opened for `{target}` ({why}; reason: {escape(review.reason or '—')})."}
    closed = escape((review.closed_reason or review.reason or "closed").replace("_", " "))
    return {"text": f"Radar review for `{target}` closed: {closed}."}


def failure_rate_text(window: Window, limits_window_minutes: int, *, title: str) -> str:
    """The figures of a payment-failure incident."""
    codes = ", ".join(f"`{code}` {count}" for code, count in window.top_codes) or "none given"
    return (
        f"{title} {window.rate:.1%} of payments failed over the last {limits_window_minutes} min "
        f"({window.failures:,} of {window.attempts:,} attempts). Top decline codes: {codes}."
    )


def recovery_text(window: Window, threshold: float, minutes: int, *, what: str) -> str:
    """The note that ends an incident."""
    return (
        f"✅ Recovered: {what} have stayed at or below {threshold:.0%} for a full {minutes}-minute window "
        f"({window.failures:,} of {window.attempts:,} in the last one)."
    )


def webhook_rate_text(window: Window, minutes: int, *, title: str) -> str:
    """The figures of a webhook-processing incident."""
    return (
        f"{title} {window.rate:.1%} of Stripe events failed to process over the last {minutes} min "
        f"({window.failures:,} of {window.attempts:,}). `refund-desk events list` shows them; "
        "`refund-desk events replay --all` retries them once fixed."
    )


def key_problem_text(kind: str) -> str:
    """The alert for a rejected Stripe key."""
    what = "rejected our API key" if kind == "authentication" else "refused a call our key is not permitted to make"
    return (
        f"🔑 Stripe {what}. Lookups and refunds fail until STRIPE_SECRET_KEY (or the restricted key's "
        "permissions, see the README) is fixed."
    )


def mention(principal: str | None) -> str | None:
    """How to mention a user or a user group (ONCALL_GROUP) in mrkdwn."""
    if not principal:
        return None
    return f"<!subteam^{principal}>" if principal.startswith("S") else f"<@{principal}>"


def dispute_taken_note(user: str) -> str:
    """The dispute thread's note when someone takes it."""
    return f"🙋 <@{user}> took this dispute."


def assign_answer(dispute_id: str, *, owner: str | None, taken: bool) -> str:
    """What the person who clicked Assign to me is told."""
    if taken:
        return f"You own `{dispute_id}` now; reminders will mention you."
    return f"<@{owner}> already took this dispute." if owner else "That dispute is not in our records."


def fraud_warning_update_note(actionable: bool) -> str:
    """The thread note when an early fraud warning changes."""
    return "Updated: " + ("still actionable." if actionable else "no longer actionable.")


def resolved_text(was: str | None) -> str:
    """An incident alert once it is over: the old text struck through."""
    return f"✅ Resolved. ~{was}~" if was else "✅ Resolved."


KEY_RECOVERED = "✅ No key errors from Stripe for a full window: resolved."


def backlog_text(waited: timedelta, limit: timedelta, urgent: int, routine: int) -> str:
    """The alert when urgent Stripe events wait too long to be applied."""
    return (
        f"🐢 Stripe events are waiting: the oldest urgent one (a dispute, fraud warning or refund) has been "
        f"due for {_duration(waited)}, over the {_duration(limit)} allowed. Due now: {urgent:,} urgent, "
        f"{routine:,} routine. Alerts and refund updates are late until the worker catches up "
        "(more worker processes help; `/metrics` shows the backlog)."
    )


def backlog_recovered_text(limit: timedelta, minutes: int) -> str:
    """The note that ends a backlog incident."""
    return (
        f"✅ Recovered: urgent Stripe events have been applied within {_duration(limit)} "
        f"for a full {minutes}-minute window."
    )


def _duration(delta: timedelta) -> str:
    """'45 s', '2 min 5 s', '14 min', '3 h 20 min'."""
    seconds = int(delta.total_seconds())
    minutes, rest = divmod(seconds, 60)
    if minutes == 0:
        return f"{seconds} s"
    if minutes < 10:
        return f"{minutes} min" + (f" {rest} s" if rest else "")
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"
