"""Block Kit for looking back: one request in full with its timeline, and paged lists. Pure."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from domain.history import (
    PAGE_SIZE,
    STATUS_GROUPS,
    CursorError,
    Filter,
    Page,
    Position,
    RequestDetail,
    Step,
    decode_cursor,
    encode_cursor,
)
from domain.links import dashboard_url
from domain.models import Dispute, RefundRequest
from domain.money import format_amount
from messages import ids, kit
from messages.blocks import STATUS_ICON, escape, slack_date
from messages.requests import REASON_LABELS, STATUS_LINE, requester_name

LINE_LIMIT = 600  # characters of one list line: a section holds it whole, whatever people typed

TITLES = {"mine": "Your refund requests", "history": "Refund requests", "disputes": "Disputes"}


def _money(req: RefundRequest) -> str:
    return format_amount(req.amount, req.currency)


# --- one request ---------------------------------------------------------------------------------------


def _step_text(step: Step) -> str:
    by = requester_name(step.actor) if step.actor else None
    note = escape(step.note)[:300] if step.note else None
    text = {
        "asked": f"📝 Asked by {by}",
        "approval_added": f"👍 Approved by {by} (one of two approvals)",
        "approved": f"👍 Approved by {by}",
        "rejected": f"🚫 Rejected by {by}" + (f": “{note}”" if note else ""),
        "expired": "⌛ Expired without a decision",
        "sent": "📨 Sent to Stripe",
        "unconfirmed": "⏳ Stripe did not answer in time; retried with the same idempotency key",
        "refused": "❌ Stripe refused the refund" + (f": {note}" if note else ""),
        "refund_pending": f"⏳ Refund `{note}` pending" if note else "⏳ Refund pending",
        "succeeded": f"✅ Refund `{note}` succeeded" if note else "✅ Refund succeeded",
        "failed": f"❌ Refund `{note}` failed" if note else "❌ Refund failed",
        "canceled": f"⊘ Refund `{note}` canceled" if note else "⊘ Refund canceled",
    }.get(step.step, step.step)
    if step.step == "approved" and note:
        text = f"👍 Ran at once: {by}, an approver within the threshold, confirmed it"
    return f"{slack_date(step.at)} · {text}"


def request_detail_blocks(detail: RequestDetail, *, livemode: bool) -> list[kit.Block]:
    """The answer to `/refunds #42`: the request in full and its timeline."""
    req = detail.request
    status = STATUS_LINE.get(req.status, req.status)
    fields = [
        f"*Amount*\n{_money(req)}",
        f"*Status*\n{status}",
        f"*Payment*\n<{dashboard_url(req.payment_id, livemode=livemode, account=req.account)}|{req.payment_id}>",
        f"*Reason*\n{REASON_LABELS.get(req.reason, req.reason)}",
        f"*Asked by*\n{requester_name(req.requested_by)} {slack_date(req.created_at)}",
    ]
    if req.decided_by and req.status != "pending":
        verb = "Rejected by" if req.status == "rejected" else "Approved by"
        when = f" {slack_date(req.decided_at)}" if req.decided_at else ""
        fields.append(f"*{verb}*\n{requester_name(req.decided_by)}{when}")
    if req.reject_reason:
        fields.append(f"*Why*\n“{escape(req.reject_reason)[:300]}”")
    if detail.refund is not None:
        r = detail.refund
        icon = STATUS_ICON.get(r.status, "•")
        line = f"`{r.id}` {icon} {r.status.replace('_', ' ')}"
        if r.failure_reason:
            line += f" ({r.failure_reason.replace('_', ' ')})"
        fields.append(f"*Stripe refund*\n{line}")
    elif req.stripe_refund_id:
        fields.append(f"*Stripe refund*\n`{req.stripe_refund_id}`")
    if detail.payment is not None and detail.payment.customer_email:
        fields.append(f"*Customer*\n{escape(detail.payment.customer_email)}")
    blocks = [
        kit.header(f"Refund request #{req.id} · {_money(req)}"),
        kit.section(fields=fields),
    ]
    if req.note:
        blocks.append(kit.section(f"> {escape(req.note)[:1500]}"))
    if req.failure_message:
        blocks.append(kit.context(f"Stripe said: {escape(req.failure_message)[:500]}"))
    lines = [_step_text(s) for s in detail.steps] or ["No audit records for this request."]
    blocks.append(kit.section("*Timeline*\n" + "\n".join(lines)[:2900]))
    if detail.permalink:
        blocks.append(kit.context(f"<{detail.permalink}|The approval message and its thread>"))
    return blocks


def request_detail_text(detail: RequestDetail) -> str:
    """The notification text of `/refunds #42`."""
    req = detail.request
    return f"Refund request #{req.id}: {_money(req)} on {req.payment_id}, {req.status}"


# --- lists ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Listing:
    """Which list a message shows, carried in its Next button so the next page is the same list."""

    kind: str  # mine, history or disputes
    filter: Filter
    page: int = 1


def request_line(r: RefundRequest, *, show_requester: bool) -> str:
    """One request in a list."""
    line = f"*#{r.id}* {_money(r)} on `{r.payment_id}` · {STATUS_LINE.get(r.status, r.status)}"
    if show_requester:
        line += f" · {requester_name(r.requested_by)}"
    line += f" · {slack_date(r.created_at)}"
    if r.reject_reason:
        line += f" · “{escape(r.reject_reason)[:120]}”"
    return line[:LINE_LIMIT]


def dispute_line(d: Dispute) -> str:
    """One dispute in a list: amount, reason, owner, evidence deadline and status."""
    icon = STATUS_ICON.get(d.status, "•")
    line = f"`{d.id}` {format_amount(d.amount, d.currency)} · {icon} {d.status.replace('_', ' ')}"
    line += f" · {(d.reason or 'no reason given').replace('_', ' ')}"
    line += f" · owner <@{d.owner}>" if d.owner else " · nobody owns it"
    if d.evidence_due_by:
        line += f" · evidence due {slack_date(d.evidence_due_by)}"
        if d.evidence_submitted:
            line += " (submitted)"
    return line[:LINE_LIMIT]


def _describe(listing: Listing) -> str:
    f = listing.filter
    parts = []
    if f.statuses:
        named = next((word for word, group in STATUS_GROUPS.items() if group == f.statuses), None)
        parts.append(named or ", ".join(f.statuses))
    if f.since:
        parts.append(f"since {slack_date(f.since, '{date_short}')}")
    if f.until:
        parts.append(f"before {slack_date(f.until, '{date_short}')}")
    if listing.kind == "history" and f.requested_by:
        parts.append(f"asked by {requester_name(f.requested_by)}")
    return f" ({'; '.join(parts)})" if parts else ""


def list_blocks(listing: Listing, page: Page, total: int) -> list[kit.Block]:
    """A page of a list: how many there are in all, the rows whole, and a Next button while more follow."""
    title = TITLES[listing.kind]
    start = (listing.page - 1) * PAGE_SIZE
    shown = f"{start + 1}–{start + len(page.rows)}" if page.rows else "none"
    header = f"*{title}*{_describe(listing)} · {total:,} in all · showing {shown}"
    blocks: list[kit.Block] = [kit.section(header)]
    if not page.rows:
        blocks.append(kit.section("Nothing matches." if total == 0 else "No more."))
    for row in page.rows:
        if isinstance(row, Dispute):
            blocks.append(kit.section(dispute_line(row)))
        else:
            blocks.append(kit.section(request_line(row, show_requester=listing.kind == "history")))
    if page.next is not None:
        blocks.append(kit.actions(kit.button("Next", ids.NEXT_PAGE, value=next_value(listing, page.next))))
    return blocks


def list_text(listing: Listing, total: int) -> str:
    """The notification text of a list."""
    return f"{TITLES[listing.kind]}: {total} in all"


def next_value(listing: Listing, after: Position) -> str:
    """The Next button's value: the list, its page, and where the next page starts."""
    f = listing.filter
    return json.dumps(
        {
            "k": listing.kind,
            "p": listing.page + 1,
            "s": list(f.statuses),
            "u": f.requested_by,
            "a": f.since.isoformat() if f.since else None,
            "b": f.until.isoformat() if f.until else None,
            "o": f.unowned_too,
            "c": encode_cursor(after),
        },
        separators=(",", ":"),
    )


def read_next(value: str) -> tuple[Listing, Position]:
    """The list and position a Next button names; ValueError when it is not one we made."""
    try:
        data = json.loads(value)
        kind = data["k"]
        if kind not in TITLES:
            raise ValueError(f"unknown list {kind!r}")
        f = Filter(
            statuses=tuple(str(s) for s in data["s"]),
            requested_by=data["u"] if isinstance(data["u"], str) else None,
            since=datetime.fromisoformat(data["a"]) if data["a"] else None,
            until=datetime.fromisoformat(data["b"]) if data["b"] else None,
            unowned_too=bool(data["o"]),
        )
        return Listing(kind, f, int(data["p"])), decode_cursor(str(data["c"]))
    except (KeyError, TypeError, CursorError) as exc:
        raise ValueError("not a Next button of ours") from exc


def refused_text(what: str) -> str:
    """What a person outside VIEWERS is told."""
    return f"You are not allowed to see {what} (see VIEWERS); ask an admin if you need to."
