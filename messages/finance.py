"""What finance reads: reconciliation reports and their items, payout notes and alerts, the
`/refunds recon` answer, the CLI's text, the monthly export's comment. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from domain.finance import CurrencyTotals, Payout, Run, RunChanges, StoredFinding, dashboard_link
from domain.money import format_amount
from messages import kit

CATEGORY_LABELS = {
    "charges": "Charges",
    "refunds": "Refunds",
    "refund_reversals": "Failed refunds returned",
    "dispute_withdrawals": "Dispute withdrawals",
    "dispute_reinstatements": "Dispute reinstatements",
    "fees": "Fees",
    "payouts": "Payouts",
    "other": "Other",
}
KIND_LABELS = {
    "charge_not_recorded": "A charge in Stripe that we never recorded",
    "refund_not_recorded": "A refund in Stripe that we never recorded",
    "dispute_not_recorded": "A dispute withdrawal we never saw",
    "payout_not_recorded": "A payout in Stripe that we never recorded",
    "refund_missing_in_stripe": "A refund we recorded that Stripe has no balance transaction for",
    "request_refund_missing": "A refund request marked refunded whose Stripe refund does not exist",
    "refund_status_differs": "Stripe returned the money of a refund (it failed) that we think went through",
    "dispute_status_differs": "Stripe reinstated a dispute's funds that we think were lost",
    "amount_differs": "The amount differs",
    "currency_differs": "The currency differs",
    "payout_total_differs": "A payout whose balance transactions do not add up to its amount",
}
ITEMS_IN_THREAD = 20  # beyond this, the thread points at the CLI's full listing


def _cause(cause: str, day: str) -> str:
    backfill = f"run `refund-desk events backfill --since {day}`, then re-run the day"
    return {
        "missed_webhook": f"Probably a missed webhook: {backfill}.",
        "made_outside_bot": "A refund made outside the bot (Dashboard or API) whose webhook never arrived: "
        f"{backfill}.",
        "rounding": "Probably a rounding difference.",
        "changed_locally": "Our record differs from Stripe's: it was mis-recorded or changed; Stripe's is the truth.",
        "refund_failed_unseen": f"The refund failed after we recorded it and the update never reached us: {backfill}.",
        "dispute_won_unseen": f"The dispute was won and the update never reached us: {backfill}.",
        "refund_never_made": "The refund was never made in Stripe (or in another account or mode): "
        "check the request, and refund again if the customer is still owed.",
        "payout_contents": "Stripe paid out a different amount than its balance transactions add up to: "
        "ask Stripe support about the payout.",
    }.get(cause, "Look at it in the Dashboard.")


def account_label(account: str | None) -> str:
    """'platform' or the connected account's id."""
    return account or "platform"


def _money(amount: int, currency: str) -> str:
    shown = format_amount(amount, currency)
    code = currency.upper()
    return shown if shown.endswith(code) else f"{shown} {code}"


def _net_summary(totals: Sequence[CurrencyTotals]) -> str:
    return " · ".join(f"{t.currency.upper()} net {_money(t.actual, t.currency)}" for t in totals) or "nothing moved"


def _headline(run: Run, counts: tuple[int, int]) -> str:
    found, flagged = counts
    where = f"{run.label} · {account_label(run.account)}"
    txns = f"{run.txn_count:,} balance transaction{'s' if run.txn_count != 1 else ''}"
    if flagged or run.flagged:
        return f"🚩 Reconciliation {where}: {found} discrepanc{'ies' if found != 1 else 'y'}, above tolerance · {txns}"
    if found:
        small = f"{found} small difference{'s' if found != 1 else ''} (in the thread)"
        return f"✅ Reconciliation {where}: within tolerance, {small} · {txns} · {_net_summary(run.currency_totals)}"
    return f"✅ Reconciliation {where}: clean · {txns} · {_net_summary(run.currency_totals)}"


def totals_table(t: CurrencyTotals) -> str:
    """A currency's categories side by side: Stripe, ours, difference (monospaced)."""
    rows = [(t.currency.upper(), "Stripe", "ours", "difference")]
    for line in t.lines:
        diff = "—" if line.difference == 0 else format_amount(line.difference, t.currency)
        rows.append(
            (
                CATEGORY_LABELS.get(line.category, line.category),
                format_amount(line.actual, t.currency),
                format_amount(line.expected, t.currency),
                diff,
            )
        )
    rows.append(
        (
            "Net",
            format_amount(t.actual, t.currency),
            format_amount(t.expected, t.currency),
            "—" if t.difference == 0 else format_amount(t.difference, t.currency),
        )
    )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join(
        f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]:>{widths[3]}}" for r in rows
    )


def run_message(run: Run, counts: tuple[int, int]) -> dict:
    """A day's or payout's report: one short line when clean, the totals beside ours when flagged."""
    text = _headline(run, counts)
    if not (run.flagged or counts[1]):
        # Blocks even for one line: a re-run updating a flagged report must replace its table.
        return {"text": text, "blocks": [kit.section(text)]}
    blocks = [kit.section(f"*{text}*")]
    for t in run.currency_totals:
        blocks.append(kit.section(f"```{totals_table(t)}```"))
    blocks.append(kit.context("The items are in this thread · `refund-desk reconcile --date` re-runs a day"))
    return {"text": text, "blocks": blocks}


def finding_text(f: StoredFinding, *, day: str, account: str | None, livemode: bool) -> str:
    """One item: what it is, the ids with Dashboard links, the money, what probably happened."""
    icon = "🚩" if f.flagged else "ℹ️"
    ids = [i for i in f.stripe_ids if not i.startswith("request:")]
    shown = []
    for stripe_id in dict.fromkeys(ids):
        link = dashboard_link(stripe_id, livemode=livemode, account=account)
        shown.append(f"<{link}|{stripe_id}>")
    requests = [i.split(":", 1)[1] for i in f.stripe_ids if i.startswith("request:")]
    if requests:
        shown += [f"request #{n}" for n in dict.fromkeys(requests)]
    label = KIND_LABELS.get(f.kind, f.kind.replace("_", " "))
    money = (
        f"Stripe {_money(f.actual, f.currency)}, our records {_money(f.expected, f.currency)}, "
        f"difference {_money(f.difference, f.currency)}"
    )
    extra = ""
    if f.kind == "currency_differs":
        extra = f" (our record says {f.details.get('our_amount')} {str(f.details.get('our_currency', '')).upper()})"
    if f.details.get("our_status"):
        extra += f" (our status: {str(f.details['our_status']).replace('_', ' ')})"
    return f"{icon} *{label}* · {' · '.join(shown)}\n{money}{extra}. {_cause(f.cause, day)}"


def findings_replies(
    run: Run, findings: Sequence[StoredFinding], total: int, *, livemode: bool, only_new: bool = False
) -> list[dict]:
    """The thread: one reply per item, then how to see the rest."""
    day = str(run.day or (run.started_at.date() if run.started_at else ""))
    out = [{"text": finding_text(f, day=day, account=run.account, livemode=livemode)} for f in findings]
    if total > len(findings):
        where = f"--date {run.day}" if run.day else f"(payout {run.payout_id})"
        out.append(
            {
                "text": f"…and {total - len(findings)} more: "
                f"`refund-desk reconcile {where} --format json` lists them all."
            }
        )
    if only_new and not findings:
        out.append({"text": "No new items."})
    return out


def _keys(keys: Sequence[tuple[str, str, str]]) -> str:
    return ", ".join(f"{KIND_LABELS.get(k, k).lower()} `{s}`" for k, s, _ in keys)


def changes_note(changes: RunChanges, *, started_via: str, started_by: str | None) -> str:
    """What a re-run changed, for the day's thread."""
    who = f"<@{started_by}>" if started_by and started_by[:1] in "UW" else (started_by or started_via)
    head = f"🔁 Re-run ({started_via}, {who}): this result replaces the earlier one."
    if not changes.any:
        return f"{head} Nothing changed ({changes.unchanged} item{'s' if changes.unchanged != 1 else ''} unchanged)."
    parts = [head]
    if changes.resolved_count:
        more = changes.resolved_count - len(changes.resolved)
        parts.append(f"✅ Resolved since: {_keys(changes.resolved)}" + (f" and {more} more" if more > 0 else "") + ".")
    if changes.new_count:
        more = changes.new_count - len(changes.new)
        parts.append(f"🆕 New: {_keys(changes.new)}" + (f" and {more} more" if more > 0 else "") + ".")
    if changes.unchanged:
        parts.append(f"{changes.unchanged} unchanged.")
    return " ".join(parts)


def changes_text(changes: RunChanges) -> str:
    """What a re-run changed, for the command line."""
    if changes.replaced is None:
        return ""
    if not changes.any:
        return f"replaces run {changes.replaced}: nothing changed"
    out = [f"replaces run {changes.replaced}"]
    if changes.resolved_count:
        out.append(f"resolved since: {', '.join(f'{k} {s}' for k, s, _ in changes.resolved)}")
    if changes.new_count:
        out.append(f"new: {', '.join(f'{k} {s}' for k, s, _ in changes.new)}")
    return "; ".join(out)


def run_text(run: Run, findings: Sequence[StoredFinding], counts: tuple[int, int]) -> str:
    """A run for the command line: the headline, the totals, every item listed."""
    head = _headline(run, counts).replace(" (in the thread)", "")
    lines = [head.replace("🚩 ", "FLAGGED ").replace("✅ ", "OK ")]
    change = changes_text(RunChanges.from_json(run.changes))
    if change:
        lines.append(f"  {change}")
    for t in run.currency_totals:
        lines += ["", *("  " + ln for ln in totals_table(t).splitlines())]
    if findings:
        lines.append("")
    day = str(run.day) if run.day else ""
    for f in findings:
        mark = "FLAGGED" if f.flagged else "below tolerance"
        ids = ", ".join(dict.fromkeys(f.stripe_ids))
        lines.append(
            f"  [{mark}] {KIND_LABELS.get(f.kind, f.kind)}: {ids}; Stripe {_money(f.actual, f.currency)}, ours "
            f"{_money(f.expected, f.currency)}, difference {_money(f.difference, f.currency)}. "
            + _cause(f.cause, day).replace("`", "")
        )
    if counts[0] > len(findings):
        lines.append(f"  …and {counts[0] - len(findings)} more (--format json lists them all)")
    return "\n".join(lines)


def failed_run_text(run_label: str, account: str | None, error: str) -> str:
    """A run that could not finish."""
    return f"⚠️ Reconciliation {run_label} · {account_label(account)} could not run: {error}"


def recon_answer(
    day: date, runs: Sequence[tuple[Run, Sequence[StoredFinding], tuple[int, int]]], *, livemode: bool
) -> dict:
    """`/refunds recon [day]`: each account's result, with its items."""
    if not runs:
        return {
            "text": f"No reconciliation of {day} yet. The worker runs each day after midnight UTC; "
            f"`refund-desk reconcile --date {day}` runs it now."
        }
    blocks: list[dict] = []
    for run, findings, counts in runs:
        blocks.append(kit.section(f"*{_headline(run, counts).replace(' (in the thread)', '')}*"))
        if run.flagged or counts[1]:
            for t in run.currency_totals:
                blocks.append(kit.section(f"```{totals_table(t)}```"))
        for f in findings[:8]:
            blocks.append(kit.section(finding_text(f, day=str(day), account=run.account, livemode=livemode)))
        if counts[0] > min(len(findings), 8):
            blocks.append(kit.context(f"…and {counts[0] - min(len(findings), 8)} more in the report's thread."))
        blocks.append(kit.divider())
    return {"text": f"Reconciliation of {day}", "blocks": blocks[:-1][:50]}


def payout_failed_alert(p: Payout, *, livemode: bool) -> dict:
    """On-call: a payout failed, with Stripe's failure code and message."""
    link = dashboard_link(p.id, livemode=livemode, account=p.account)
    code = p.failure_code or "unknown"
    message = p.failure_message or "Stripe gave no message."
    text = (
        f"🚨 Payout {_money(p.amount, p.currency)} failed ({account_label(p.account)}): `{code}` — {message} "
        "The money is back in the Stripe balance; check the bank account before the next payout."
    )
    return {
        "text": text,
        "blocks": [
            kit.section(f"*🚨 Payout {_money(p.amount, p.currency)} failed* · {account_label(p.account)}"),
            kit.section(
                fields=[f"*Failure code*\n`{code}`", f"*Stripe says*\n{message}", f"*Payout*\n<{link}|{p.id}>"]
            ),
            kit.context("The money is back in the Stripe balance; fix the bank account before the next payout."),
        ],
    }


def export_comment(month: str, rows: int, head: tuple[int, str] | None, *, asker: str | None = None) -> str:
    """The message a monthly export is posted with: what it holds and the audit chain's head (the anchor)."""
    who = f", for <@{asker}>" if asker else ""
    anchor = (
        f"Audit chain head: position {head[0]:,}, sha256 `{head[1]}`. Keep this message: "
        f"`refund-desk audit verify --anchor {head[1]}` proves nothing before it was changed."
        if head
        else "The audit chain is empty."
    )
    return f"📦 Refunds, disputes and audit records of {month}{who}: {rows:,} rows. {anchor}"
