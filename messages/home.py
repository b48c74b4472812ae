"""The Home tab (a `home` view for views.publish): what waits for the person, by their roles. Pure."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from domain.history import Home
from domain.models import RefundRequest
from domain.money import format_amount
from messages import ids, kit
from messages.blocks import escape, slack_date
from messages.history import dispute_line, request_line
from messages.requests import REASON_LABELS, requester_name

MAX_BLOCKS = 100  # Slack's limit for a view

HELP = """\
*How to use the refund desk*
`/refunds pi_…` look up a payment, refund or dispute · `/refunds request pi_… 25.50 duplicate note…` ask for a refund
`/refunds #42` one request in full · `/refunds mine` your requests · `/refunds history` everyone's (approvers)
`/refunds disputes` open disputes, soonest deadline first · `/refunds help` everything else"""


def _waiting(req: RefundRequest) -> list[kit.Block]:
    money = format_amount(req.amount, req.currency)
    text = (
        f"*#{req.id}* {money} on `{req.payment_id}` · {REASON_LABELS.get(req.reason, req.reason)} · "
        f"asked by {requester_name(req.requested_by)} {slack_date(req.created_at)}"
    )
    if req.approvals_needed == 2:
        text += f" · {len(req.approvals)} of 2 approvals"
    if req.note:
        text += f"\n> {escape(req.note)[:500]}"
    approve = kit.button("Approve", ids.APPROVE_REQUEST, value=str(req.id), style="primary")
    # The same confirmation as in the approvals channel: a click moves money.
    approve["confirm"] = {
        "title": kit.plain("Approve this refund?"),
        "text": kit.plain(f"Refund {money} on {req.payment_id}. This moves money."),
        "confirm": kit.plain("Approve"),
        "deny": kit.plain("Cancel"),
    }
    reject = kit.button("Reject", ids.REJECT_REQUEST, value=str(req.id), style="danger")
    actions = kit.actions(approve, reject)
    actions["block_id"] = f"home-decide:{req.id}"
    return [kit.section(text), actions]


def _more(shown: int, total: int, command: str) -> list[kit.Block]:
    return [kit.context(f"{total - shown:,} more: `{command}`")] if total > shown else []


def home_view(home: Home, *, now: datetime) -> dict[str, Any]:
    """The view to publish for this person's Home tab."""
    blocks: list[kit.Block] = [kit.header("Refund desk")]
    if home.notice:
        blocks.append(kit.section(f"⚠️ {escape(home.notice)}"))
    if not home.viewer:
        blocks.append(
            kit.section("You are not in VIEWERS, so payment details are not shown here. Ask an admin if you need them.")
        )
    if home.viewer and home.approver:
        blocks += [kit.divider(), kit.section(f"*Waiting for your decision* · {max(home.waiting_total, 0):,}")]
        if not home.waiting:
            blocks.append(kit.section("Nothing waits for you. 🎉"))
        for req in home.waiting:
            blocks += _waiting(req)
        blocks += _more(len(home.waiting), home.waiting_total, "/refunds history pending")
    if home.viewer and (home.requester or home.mine):
        blocks += [
            kit.divider(),
            kit.section(f"*Your requests* · open and from the last 30 days · {home.mine_total:,} in all"),
        ]
        if not home.mine:
            blocks.append(kit.section("You have not asked for any refund yet."))
        blocks += [kit.section(request_line(r, show_requester=False)) for r in home.mine]
        blocks += _more(len(home.mine), home.mine_total, "/refunds mine")
    if home.viewer and home.oncall:
        blocks += [
            kit.divider(),
            kit.section(f"*Open disputes: yours and nobody's* · soonest deadline first · {home.disputes_total:,}"),
        ]
        if not home.disputes:
            blocks.append(kit.section("No open dispute is yours or unowned."))
        blocks += [kit.section(dispute_line(d)) for d in home.disputes]
        blocks += _more(len(home.disputes), home.disputes_total, "/refunds disputes")
    blocks += [kit.divider(), kit.section(HELP), kit.context(f"Updated {slack_date(now)}")]
    return {"type": "home", "blocks": blocks[:MAX_BLOCKS]}
