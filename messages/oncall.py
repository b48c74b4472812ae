"""What on-call reads about paging, escalation, webhook delivery, Connect accounts and permissions. Pure."""

from __future__ import annotations

import re
from datetime import datetime

from domain.alerts import Window
from domain.connect import Account, Problem
from domain.links import DASHBOARD
from domain.permissions import Check
from messages import ids, kit

PROBLEM_TITLES = {
    "charges_disabled": "charges disabled",
    "payouts_disabled": "payouts disabled",
    "disconnected": "disconnected from the platform",
}
MAX_REQUIREMENTS = 8  # Stripe's list can be long; the Dashboard has the rest


def incident_message(
    text: str,
    incident_id: int,
    *,
    mention: str | None,
    acknowledged_by: str | None = None,
    escalated_to: str | None = None,
    paged: bool = False,
) -> dict:
    """An open incident's alert: who it calls, what happened, and *Acknowledge* until someone does."""
    lead = f"{mention} {text}" if mention else text
    notes = []
    if paged:
        notes.append("📟 PagerDuty paged")
    if escalated_to:
        notes.append(f"⏫ escalated to {escalated_to}")
    if acknowledged_by:
        notes.append(f"👀 acknowledged by <@{acknowledged_by}>")
    blocks = [kit.section(lead)]
    if notes:
        blocks.append(kit.context(" · ".join(notes)))
    if not acknowledged_by:
        blocks.append(kit.actions(kit.button("Acknowledge", ids.ACK_INCIDENT, value=str(incident_id), style="primary")))
    return {"text": lead, "blocks": blocks}


def resolved_message(was: str | None) -> dict:
    """An incident alert once it is over: the old text struck through, no button left."""
    text = f"✅ Resolved. ~{was}~" if was else "✅ Resolved."
    return {"text": text, "blocks": [kit.section(text)]}


def acknowledged_note(user: str, *, paged: bool) -> str:
    """The thread note when someone acknowledges an incident."""
    return f"👀 <@{user}> acknowledged this incident" + (" (PagerDuty acknowledged too)." if paged else ".")


def acknowledge_answer(*, done: bool, by: str | None) -> str:
    """What the person who clicked *Acknowledge* is told."""
    if done:
        return "You acknowledged this incident; it stays open until the rate recovers."
    return f"<@{by}> already acknowledged it." if by else "That incident is already over."


def escalation_note(mention: str | None, minutes: int, *, paged: bool) -> dict:
    """The thread reply (broadcast) when an incident is still open after the escalation delay."""
    who = mention or "Everyone"
    page = " PagerDuty paged again as critical." if paged else ""
    text = (
        f"⏫ {who}: this incident has lasted {minutes} min. Per the payments SOP, an outage past 30 minutes "
        f"means switching the payment form off until it recovers.{page}"
    )
    return {"text": text, "reply_broadcast": True}


def delivery_text(window: Window, minutes: int, *, fetched: int, title: str) -> str:
    """Stripe failed to deliver events to our webhook endpoint."""
    got = f"; {fetched:,} of them had not reached us and were fetched and stored now" if fetched else ""
    return (
        f"{title} Stripe could not deliver {window.failures:,} of {window.attempts:,} events to our webhook "
        f"endpoint in the last {minutes} min{got}. Check the endpoint in the Stripe Dashboard "
        "(Developers → Webhooks) and `GET /readyz`."
    )


def delivery_recovered(minutes: int) -> str:
    """The note that ends a delivery incident."""
    return f"✅ Recovered: Stripe's webhook deliveries have stayed healthy for a full {minutes}-minute window."


def silence_text(last: datetime, minutes: int) -> str:
    """No webhook for a while although Stripe has new events."""
    return (
        f"🔇 No Stripe webhook has arrived for {minutes}+ min (the last at {last:%Y-%m-%d %H:%M} UTC) while "
        "Stripe's events list has newer events: the endpoint may be unreachable, disabled or its secret "
        "rolled. The worker fetches what Stripe could not deliver; check the endpoint in the Stripe Dashboard."
    )


SILENCE_RECOVERED = "✅ Webhooks are arriving again."


def account_name(account: Account) -> str:
    """An account as people see it: its name and id."""
    return f"*{_escape(account.name)}* (`{account.id}`)" if account.name else f"`{account.id}`"


def account_url(account_id: str, *, livemode: bool) -> str:
    """The account's page in the platform's Dashboard."""
    return f"{DASHBOARD}/{'' if livemode else 'test/'}connect/accounts/{account_id}"


def _title(problem: Problem) -> str:
    if problem.key.startswith("capability:"):
        return f"capability `{problem.key.split(':', 1)[1]}` inactive"
    return PROBLEM_TITLES.get(problem.key, problem.key.replace("_", " "))


def account_problem_message(account: Account, problem: Problem, *, mention: str | None, livemode: bool) -> dict:
    """The alert when a connected account can no longer take charges, get payouts, or use a capability."""
    icon = "🔌" if problem.key == "disconnected" else "🚫"
    lead = f"{mention} " if mention else ""
    lines = [f"{lead}{icon} Connected account {account_name(account)}: {_title(problem)}."]
    if problem.reason:
        lines.append(f"Reason: `{_escape(problem.reason)}`.")
    if problem.requires:
        shown = ", ".join(f"`{_escape(r)}`" for r in problem.requires[:MAX_REQUIREMENTS])
        more = len(problem.requires) - MAX_REQUIREMENTS
        lines.append(f"Stripe still requires: {shown}" + (f" and {more} more." if more > 0 else "."))
    if problem.key == "disconnected":
        lines.append("Lookups and refunds on this account stop working; its alerts stay as they were.")
    text = "\n".join(lines)
    button = kit.button("Open in Stripe", ids.OPEN_IN_STRIPE, url=account_url(account.id, livemode=livemode))
    return {"text": text, "blocks": [kit.section(text), kit.actions(button)]}


def account_cleared_note(problem_key: str) -> dict:
    """The thread reply when an account's problem is gone."""
    title = _title(Problem(problem_key))
    return {"text": f"✅ No longer {title}.", "reply_broadcast": True}


_MRKDWN = re.compile(r"<[^|>]*\|([^>]*)>|[`*~]|^[^\w<]+")


def page_summary(text: str) -> str:
    """Slack text as a PagerDuty summary: no mrkdwn, links as their label, no leading emoji."""
    plain = _MRKDWN.sub(lambda m: m.group(1) or "", text).strip()
    return re.sub(r"\s+", " ", plain)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def deadline_passed_note(dispute_id: str) -> str:
    """The dispute thread's note when the evidence deadline passed with nothing submitted."""
    return f"⌛ The evidence deadline of `{dispute_id}` has passed with no evidence submitted."


def doctor_report(checks: list[Check]) -> str:
    """What `refund-desk doctor` prints: every check, then what to fix."""
    lines = []
    for area in dict.fromkeys(c.area for c in checks):
        lines.append(f"{area}:")
        for c in (c for c in checks if c.area == area):
            mark = "ok  " if c.ok else ("warn" if c.warning else "FAIL")
            lines.append(f"  {mark} {c.name}" + (f": {c.detail}" if c.detail else ""))
    fixes = [c for c in checks if not c.ok and c.fix]
    if fixes:
        lines.append("")
        lines.append("To fix:")
        lines += [f"  - {c.name}: {c.fix}" for c in fixes]
    failed = sum(c.failed for c in checks)
    warned = sum(not c.ok and c.warning for c in checks)
    lines.append("")
    if failed:
        lines.append(f"{failed} problem(s) found.")
    elif warned:
        lines.append(f"Nothing the desk needs is missing; {warned} warning(s) above.")
    else:
        lines.append("Everything the desk needs is in place.")
    return "\n".join(lines)


def reconciliation_failed_text(day: str, problems: list[str]) -> str:
    """The incident when the daily reconciliation could not run."""
    return f"🧾 The reconciliation of {day} could not run: {'; '.join(problems)[:500]}. The worker tries again."


RECONCILIATION_RAN = "✅ The reconciliation ran again."
