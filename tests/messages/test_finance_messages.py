"""Finance messages: valid Block Kit, money to the unit in every currency, items that name ids and causes."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from slack_sdk.models.blocks import Block

from domain.finance import Payout, Run, RunChanges, StoredFinding, totals, totals_to_json
from messages import finance as fm

T = datetime(2026, 12, 1, 2, tzinfo=UTC)
TOTALS = totals_to_json(
    totals(
        [
            ("usd", "charges", 27500, 27500, 5),
            ("usd", "refunds", -10500, -8500, 4),
            ("jpy", "charges", 12845, 12845, 2),
            ("kwd", "refunds", -1230, -1240, 1),
            ("usd", "fees", -1409, -1409, 0),
        ]
    )
)


def _run(flagged: bool, **kw) -> Run:
    base = dict(
        id=7,
        scope="day",
        account=None,
        day=date(2026, 11, 30),
        payout_id=None,
        status="discrepancies" if flagged else "clean",
        flagged=flagged,
        current=True,
        txn_count=12,
        totals=TOTALS,
        changes={},
        replaces=None,
        error=None,
        started_via="schedule",
        started_by=None,
        started_at=T,
        finished_at=T,
    )
    return Run(**(base | kw))


def _finding(kind: str, **kw) -> StoredFinding:
    base = dict(
        id=1,
        run_id=7,
        kind=kind,
        subject="re_1",
        currency="usd",
        expected=0,
        actual=-2000,
        difference=-2000,
        flagged=True,
        cause="missed_webhook",
        stripe_ids=["txn_1", "re_1", "request:42"],
        details={},
        resolved_at=None,
    )
    return StoredFinding(**(base | kw))


def _valid(message: dict) -> None:
    for block in message.get("blocks", []):
        parsed = Block.parse(block)
        parsed.validate_json()


@pytest.mark.parametrize(("flagged", "counts"), [(False, (0, 0)), (False, (1, 0)), (True, (3, 2))])
def test_a_days_report(flagged, counts) -> None:
    message = fm.run_message(_run(flagged), counts)
    _valid(message)
    text = message["text"]
    assert "2026-11-30" in text and "platform" in text
    if not flagged and not counts[0]:
        assert text.startswith("✅") and "clean" in text and "\n" not in text  # one short line
        assert len(message["blocks"]) == 1
    if flagged:
        tables = " ".join(b["text"]["text"] for b in message["blocks"] if b["type"] == "section")
        assert "¥12,845" in tables and "-1.230 KWD" in tables and "-1.240 KWD" in tables and "0.010 KWD" in tables
        assert "-$20.00" in tables  # refunds: Stripe moved $20.00 more than our records say


def test_an_item_names_its_ids_links_money_and_cause() -> None:
    text = fm.finding_text(_finding("refund_not_recorded"), day="2026-11-30", account="acct_9", livemode=True)
    assert "<https://dashboard.stripe.com/acct_9/search?query=re_1|re_1>" in text and "request #42" in text
    assert "-$20.00" in text and "refund-desk events backfill --since 2026-11-30" in text
    small = fm.finding_text(
        _finding("amount_differs", flagged=False, cause="rounding"), day="d", account=None, livemode=False
    )
    assert small.startswith("ℹ️") and "rounding" in small


def test_what_a_rerun_changed() -> None:
    changes = RunChanges(3, (("refund_not_recorded", "re_1", "usd"),), (), 1, 0, 2)
    note = fm.changes_note(changes, started_via="cli", started_by="U0FINANCE1")
    assert "Resolved since" in note and "re_1" in note and "<@U0FINANCE1>" in note and "2 unchanged" in note
    assert "nothing changed" in fm.changes_text(RunChanges(3)).lower()


def test_the_recon_answer_and_the_payout_alert_are_valid_block_kit() -> None:
    answer = fm.recon_answer(
        date(2026, 11, 30), [(_run(True), [_finding("refund_not_recorded")], (1, 1))], livemode=False
    )
    _valid(answer)
    assert "No reconciliation" in fm.recon_answer(date(2026, 11, 30), [], livemode=False)["text"]
    payout = Payout(
        "po_1",
        "acct_1",
        True,
        7409,
        "brl",
        "failed",
        True,
        None,
        "could_not_process",
        "The bank could not process this transfer.",
        T,
        T,
    )
    alert = fm.payout_failed_alert(payout, livemode=True)
    _valid(alert)
    assert "could_not_process" in alert["text"] and "R$74.09 BRL" in alert["text"]
