"""Pure Block Kit rendering: domain objects in, blocks out. No I/O."""

from __future__ import annotations

from datetime import datetime

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    MarkdownTextObject,
    SectionBlock,
)

from domain.commands import USAGE
from domain.ids import kind_of
from domain.links import dashboard_url
from domain.models import Dispute, PaymentView, Refund, refundable, refunded
from domain.money import format_amount
from domain.policy import refusal_to_refund
from messages import ids, kit

MAX_LISTED = 15  # refunds or disputes listed before "and N more"; keeps a message readable

STATUS_ICON = {
    "succeeded": "✅",
    "pending": "⏳",
    "requires_action": "⏳",
    "processing": "⏳",
    "failed": "❌",
    "canceled": "⊘",
    "requires_capture": "🔒",
    "requires_payment_method": "❌",
    "requires_confirmation": "⏳",
    "needs_response": "🚨",
    "warning_needs_response": "🚨",
    "under_review": "🔎",
    "warning_under_review": "🔎",
    "won": "🏆",
    "lost": "💸",
    "warning_closed": "✔️",
    "prevented": "🛡️",
    "approved": "👍",
    "sent": "📨",
}


BRANDS = {
    "visa": "Visa",
    "mastercard": "Mastercard",
    "amex": "American Express",
    "jcb": "JCB",
    "discover": "Discover",
    "diners": "Diners Club",
    "unionpay": "UnionPay",
    "cartes_bancaires": "Cartes Bancaires",
}


def _with_code(shown: str, currency: str) -> str:
    # "$" alone is ambiguous across dollars; "5.120 KWD" already names its currency.
    code = currency.upper()
    return shown if shown.endswith(code) else f"{shown} {code}"


def _status(status: str) -> str:
    return f"{STATUS_ICON.get(status, '•')} {status.replace('_', ' ')}"


def slack_date(when: datetime, fmt: str = "{date_short_pretty} {time}") -> str:
    """A date Slack shows in each reader's own time zone, with a UTC fallback."""
    fallback = when.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(when.timestamp())}^{fmt}|{fallback}>"


def escape(text: str) -> str:
    """Escape Slack mrkdwn control characters in text we did not write."""
    # Slack mrkdwn control characters; other text (emails, descriptions) goes through as is.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _refund_line(r: Refund, focus: str | None) -> str:
    mark = "👉 " if r.id == focus else ""
    line = f"{mark}`{r.id}` {format_amount(r.amount, r.currency)} · {_status(r.status)}"
    if r.reason:
        line += f" · {r.reason.replace('_', ' ')}"
    if r.failure_reason:
        line += f" · failed: {r.failure_reason.replace('_', ' ')}"
    if r.request_id:
        line += f" · request #{r.request_id}"
    return line


def _dispute_line(d: Dispute, focus: str | None) -> str:
    mark = "👉 " if d.id == focus else ""
    line = f"{mark}`{d.id}` {format_amount(d.amount, d.currency)} · {_status(d.status)}"
    if d.reason:
        line += f" · {d.reason.replace('_', ' ')}"
    if d.evidence_due_by and d.status in {"needs_response", "warning_needs_response"}:
        line += f" · evidence due {slack_date(d.evidence_due_by)}"
    if d.owner:
        line += f" · owner <@{d.owner}>"
    return line


def _listing(title: str, lines: list[str]) -> str:
    shown = lines[:MAX_LISTED]
    more = len(lines) - len(shown)
    text = f"*{title}*\n" + "\n".join(shown)
    return text + (f"\n…and {more} more" if more else "")


def payment_blocks(view: PaymentView, *, now: datetime) -> list[kit.Block]:
    """The answer to a lookup: the payment, its refunds, disputes and open requests."""
    p = view.payment
    cur = p.currency
    kind = "Payment" if p.payment_intent_id else "Charge"
    blocks = [kit.header(f"{kind} {format_amount(p.amount, cur)} · {p.status.replace('_', ' ')}")]
    fields = [
        f"*Amount*\n{_with_code(format_amount(p.amount, cur), cur)}",
        f"*Status*\n{_status(p.status)}",
        f"*Captured*\n{format_amount(p.amount_captured, cur)}",
        f"*Refunded*\n{format_amount(refunded(view), cur)}",
        f"*Refundable now*\n{format_amount(refundable(view), cur)}",
        f"*Customer*\n{escape(p.customer_email) if p.customer_email else '—'}",
    ]
    if p.card_last4:
        fields.append(f"*Card*\n{BRANDS.get(p.card_brand or '', (p.card_brand or 'Card').title())} •••• {p.card_last4}")
    fields.append(f"*Created*\n{slack_date(p.stripe_created)}")
    if p.failure_code or p.failure_message:
        fields.append(f"*Last failure*\n{escape(p.failure_message or p.failure_code or '')[:200]}")
    blocks.append(kit.section(fields=fields))
    if p.description:
        blocks.append(kit.section(f"_{escape(p.description)[:500]}_"))
    if view.refunds:
        blocks += [kit.divider(), kit.section(_listing("Refunds", [_refund_line(r, view.focus) for r in view.refunds]))]
    if view.disputes:
        lines = [_dispute_line(d, view.focus) for d in view.disputes]
        blocks += [kit.divider(), kit.section(_listing("Disputes", lines))]
    if view.requests:
        lines = [
            f"#{q.id} {format_amount(q.amount, q.currency)} · {_status(q.status)} · asked by <@{q.requested_by}>"
            for q in view.requests
        ]
        blocks.append(kit.section(_listing("Open refund requests", lines)))
    if view.unreadable:
        # Least privilege: what the key could not read is said in one line, the rest is shown.
        missing = "; ".join(f"{what} (the Stripe key lacks *{permission}*)" for what, permission in view.unreadable)
        blocks.append(kit.context(f"⚠️ Could not read {missing}."))
    link_target = view.focus if view.focus and kind_of(view.focus) == "dispute" else p.id
    ids_text = " · ".join(f"`{i}`" for i in (p.payment_intent_id, p.charge_id) if i)
    if p.account:
        ids_text += f" · account `{p.account}`"
    ids_text += f" · {'live' if p.livemode else 'test'} mode · synced {_ago(p.synced_at or p.observed_at, now)}"
    blocks.append(kit.context(ids_text))
    buttons = [
        kit.button(
            "Open in Stripe", ids.OPEN_IN_STRIPE, url=dashboard_url(link_target, livemode=p.livemode, account=p.account)
        )
    ]
    if refusal_to_refund(view, None) is None:
        buttons.insert(0, kit.button("Request refund", ids.REQUEST_REFUND, value=p.id))
    blocks.append(kit.actions(*buttons))
    return blocks


def _ago(then: datetime, now: datetime) -> str:
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


def payment_text(view: PaymentView) -> str:
    """The notification fallback text of a lookup answer."""
    p = view.payment
    left = format_amount(refundable(view), p.currency)
    return f"{p.id}: {format_amount(p.amount, p.currency)} {p.status}, refundable {left}"


def usage_blocks(problem: str | None = None) -> list[kit.Block]:
    """Usage, with what was wrong first when there was a problem."""
    return ([kit.section(f"⚠️ {problem}")] if problem else []) + [kit.section(USAGE)]


def to_dicts(blocks: list[Block]) -> list[dict]:
    """Blocks as the JSON Slack takes."""
    return [b.to_dict() for b in blocks]


def refund_feed_message(refund: Refund, view: PaymentView | None) -> dict:
    """The refunds-feed post for a refund made outside the bot (Dashboard, other systems)."""
    payment = view.payment if view else None
    amount = format_amount(refund.amount, refund.currency)
    payment_id = refund.payment_intent_id or refund.charge_id or "?"
    who = f" · {escape(payment.customer_email)}" if payment and payment.customer_email else ""
    lines = [f"*Refund {amount}* on `{payment_id}`{who}", f"Status: {_status(refund.status)}"]
    if refund.reason:
        lines.append(f"Reason: {refund.reason.replace('_', ' ')}")
    if refund.failure_reason:
        lines.append(f"Failure: {refund.failure_reason.replace('_', ' ')}")
    if view and payment:
        lines.append(
            f"Payment: {format_amount(payment.amount_captured, payment.currency)} captured, "
            f"{format_amount(refunded(view), payment.currency)} refunded in all"
        )
    context = f"`{refund.id}` · made outside the bot (Dashboard or API) · {slack_date(refund.stripe_created)}"
    livemode = payment.livemode if payment else False
    account = refund.account or (payment.account if payment else None)
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text="\n".join(lines))),
        ContextBlock(elements=[MarkdownTextObject(text=context)]),
        ActionsBlock(
            elements=[
                ButtonElement(
                    text="Open in Stripe",
                    action_id=ids.OPEN_IN_STRIPE,
                    url=dashboard_url(payment_id, livemode=livemode, account=account),
                )
            ]
        ),
    ]
    return {"text": f"Refund {amount} on {payment_id}: {refund.status}", "blocks": to_dicts(blocks)}


def refund_status_reply(before: Refund | None, after: Refund) -> dict:
    """A thread reply saying how a refund's status moved."""
    moved = f"{_status(before.status)} → {_status(after.status)}" if before else _status(after.status)
    text = f"Refund `{after.id}`: {moved}"
    if after.failure_reason:
        text += f" ({after.failure_reason.replace('_', ' ')})"
    return {"text": text}
