"""Reconciliation end to end: a day built in the Stripe stand-in (webhooks to the real app), reconciled
against the store, broken in three ways, re-run, repaired with a backfill; payouts; JPY and KWD."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
import stripe
from click.testing import CliRunner
from conftest import STRIPE_KEY, WEBHOOK_SECRET, LiveServer, replace_settings
from support import threads

from cli import main
from domain.finance import day_bounds, previous_day
from services import reconciliation
from services.reconciliation import ReconcileBusy
from store import db
from store import finance as finance_store

DAY = previous_day(datetime.now(UTC))  # recent enough for Stripe's 30 days of events (the backfill)
START = int(day_bounds(DAY)[0].timestamp())
H = 3600


@pytest.fixture
def desk(make_server_for, settings, slack, stripe_api) -> LiveServer:
    finance = replace_settings(
        settings,
        finance_channel="C0FINANCE",
        alert_routes={("acct_1CONNECTED", "alerts"): "C0CONNECTALERTS"},
    )
    web = make_server_for(finance, slack)
    stripe_api.deliver_webhooks(f"{web.url}/webhooks/stripe", WEBHOOK_SECRET)
    return web


@pytest.fixture
def client(stripe_api) -> stripe.StripeClient:
    return stripe.StripeClient(STRIPE_KEY, base_addresses={"api": stripe_api.url})


def _sync(web: LiveServer, stripe_api) -> None:
    """Every event delivered and applied."""
    stripe_api.flush_webhooks()
    web.drain()


def _refund(stripe_api, client, charge: dict, amount: int | None = None, settle: str = "succeeded") -> dict:
    params = {"charge": charge["id"]} | ({"amount": amount} if amount else {})
    refund = client.v1.refunds.create(params=params).to_dict()  # type: ignore[arg-type]
    return stripe_api.settle_refund(refund["id"], settle, "expired_or_canceled_card" if settle == "failed" else None)


def _build_day(web: LiveServer, stripe_api, client) -> dict:
    """Charges, a partial and a full refund, a failed refund, a dispute lost and one won, a fee, a payout."""
    stripe_api.set_clock(START - 3 * 86400 + H)  # earlier payments: available, so the payout sweeps them
    stripe_api.add_payment(4000)
    stripe_api.add_payment(6000)
    stripe_api.set_clock(START + H)
    paid = {
        name: stripe_api.add_payment(amount)["charge"]
        for name, amount in (("a", 10000), ("b", 5000), ("c", 2500), ("d", 3000), ("e", 7000))
    }
    made = {
        "partial": _refund(stripe_api, client, paid["a"], 2500),
        "full": _refund(stripe_api, client, paid["b"]),
        "failed": _refund(stripe_api, client, paid["c"], 1000, settle="failed"),
    }
    stripe_api.add_dispute(paid["d"]["id"], status="lost")
    stripe_api.add_dispute(paid["e"]["id"], status="won")
    stripe_api.add_fee(150)
    stripe_api.set_clock(START + 2 * H)
    payout = stripe_api.add_payout("usd")
    _sync(web, stripe_api)
    return {"charges": paid, "refunds": made, "payout": payout}


def _day(web: LiveServer, **kw):
    return reconciliation.reconcile_day(
        web.deps.requests, DAY, None, via="cli", by="U0FINANCE1", now=datetime.now(UTC), **kw
    )


def _kinds(outcome) -> dict[str, object]:
    return {f.kind: f for f in outcome.findings}


def test_a_day_reconciles_then_three_breaks_are_found_then_a_backfill_resolves_one(
    desk: LiveServer, stripe_api, client, conn, db_url
) -> None:
    day = _build_day(desk, stripe_api, client)
    clean = _day(desk)
    assert clean.counts == (0, 0) and not clean.flagged and clean.run.status == "clean"
    [usd] = clean.run.currency_totals
    lines = {line.category: line for line in usd.lines}
    assert lines["charges"].actual == 27500 and lines["refunds"].actual == -(2500 + 5000 + 1000)
    assert lines["refund_reversals"].actual == 1000
    assert lines["dispute_withdrawals"].actual == -10000 and lines["dispute_reinstatements"].actual == 7000
    assert lines["payouts"].actual == -day["payout"]["amount"] and lines["fees"].actual < -150
    assert usd.difference == 0
    desk.deliver()
    top, replies = threads(desk.slack.messages["C0FINANCE"])
    assert len(top) == 1 and "clean" in top[0]["text"] and not replies[top[0]["ts"]]

    # (a) a refund whose webhooks never arrived
    stripe_api.stop_webhooks()
    stripe_api.set_clock(START + 5 * H)
    lost = _refund(stripe_api, client, day["charges"]["a"], 2000)
    stripe_api.deliver_webhooks(f"{desk.url}/webhooks/stripe", WEBHOOK_SECRET)
    # (b) a refund of ours whose amount is off by 0.01
    off = day["refunds"]["partial"]["id"]
    conn.execute("UPDATE refunds SET amount = amount + 1 WHERE id = %s", (off,))
    # (c) a request marked refunded whose refund Stripe does not have
    request_id = conn.execute(
        "INSERT INTO refund_requests (payment_id, charge_id, amount, currency, status, requested_by, requested_via,"
        " decided_by, decided_at, stripe_refund_id, expires_at, created_at, updated_at)"
        " VALUES (%s, %s, 1500, 'usd', 'succeeded', 'U0SUPPORT1', 'slash_command', 'U0MANAGER1', %s,"
        " 're_GhostRefundNeverMade0001', %s, %s, %s) RETURNING id",
        (
            day["charges"]["c"]["payment_intent"],
            day["charges"]["c"]["id"],
            *[datetime.fromtimestamp(START + 6 * H, UTC)] * 4,
        ),
    ).fetchone()[0]
    conn.commit()

    broken = _day(desk)
    found = _kinds(broken)
    assert (
        broken.counts == (3, 2)
        and broken.flagged
        and set(found)
        == {
            "refund_not_recorded",
            "amount_differs",
            "request_refund_missing",
        }
    )
    a, b, c = found["refund_not_recorded"], found["amount_differs"], found["request_refund_missing"]
    assert a.subject == lost["id"] and lost["balance_transaction"] in a.stripe_ids and a.flagged
    assert (a.actual, a.expected, a.cause) == (-2000, 0, "made_outside_bot")  # its metadata names no request
    assert (b.subject, b.difference, b.flagged, b.cause) == (off, 1, False, "rounding")  # reported, not flagged
    assert c.subject == "re_GhostRefundNeverMade0001" and f"request:{request_id}" in c.stripe_ids and c.flagged
    assert broken.changes.new_count == 3 and broken.changes.replaced == clean.run.id

    desk.deliver()
    top, replies = threads(desk.slack.messages["C0FINANCE"])
    assert len(top) == 1 and top[0]["text"].startswith("🚩")  # the day's message, updated in place
    thread = replies[top[0]["ts"]]
    assert "Re-run" in thread[0] and len(thread) == 4
    assert any(lost["id"] in t and "refund-desk events backfill" in t for t in thread)
    assert any("request #" in t and "never made" in t for t in thread)
    assert any(off in t and "rounding" in t for t in thread)

    env = {
        "DATABASE_URL": db_url,
        "STRIPE_SECRET_KEY": STRIPE_KEY,
        "STRIPE_API_BASE": stripe_api.url,
        "LOG_LEVEL": "ERROR",
    }
    since = datetime.fromtimestamp(START, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    backfilled = CliRunner().invoke(main, ["events", "backfill", "--since", since], env=env, catch_exceptions=False)
    assert backfilled.exit_code == 0, backfilled.output
    desk.drain()

    again = _day(desk)
    assert {f.kind for f in again.findings} == {"amount_differs", "request_refund_missing"}
    assert again.changes.resolved == (("refund_not_recorded", lost["id"], "usd"),) and again.changes.new_count == 0
    resolved = conn.execute(
        "SELECT resolved_at IS NOT NULL, resolved_by_run FROM recon_findings WHERE run_id = %s AND kind = %s",
        (broken.run.id, "refund_not_recorded"),
    ).fetchone()
    assert resolved == (True, again.run.id)
    desk.deliver()
    _, replies = threads(desk.slack.messages["C0FINANCE"])
    note = replies[top[0]["ts"]][-1]
    assert "Resolved since" in note and lost["id"] in note

    # Anyone in finance sees the day's result in Slack.
    answer, _ = desk.slash(f"recon {DAY}", user_id="U0FINANCE1")
    body = answer.json()
    text = json.dumps(body["blocks"], ensure_ascii=False)
    assert "re_GhostRefundNeverMade0001" in text and "🚩" in text and str(DAY) in body["text"]


@pytest.mark.parametrize(
    ("currency", "amounts", "refund", "off", "tolerance"),
    [
        ("jpy", (500, 12345), 200, 1, {"usd": 500}),  # no JPY tolerance: one yen counts
        ("kwd", (5120, 100000), 1230, 10, {"usd": 500}),  # 0.010 KWD
        ("jpy", (500, 12345), 200, 1, {"usd": 500, "jpy": 100}),  # within ¥100: reported, not flagged
    ],
)
def test_zero_and_three_decimal_days_reconcile_to_the_unit(
    make_server_for, settings, slack, stripe_api, client, conn, currency, amounts, refund, off, tolerance
) -> None:
    web = make_server_for(replace_settings(settings, reconciliation_tolerance=tolerance), slack)
    stripe_api.deliver_webhooks(f"{web.url}/webhooks/stripe", WEBHOOK_SECRET)
    stripe_api.set_clock(START + H)
    charges = [stripe_api.add_payment(amount, currency)["charge"] for amount in amounts]
    made = _refund(stripe_api, client, charges[0], refund)
    _sync(web, stripe_api)
    clean = _day(web)
    [totals] = clean.run.currency_totals
    lines = {line.category: line for line in totals.lines}
    assert totals.currency == currency and clean.counts == (0, 0)
    assert (lines["charges"].actual, lines["charges"].expected) == (sum(amounts), sum(amounts))
    assert (lines["refunds"].actual, lines["refunds"].expected) == (-refund, -refund)
    conn.execute("UPDATE refunds SET amount = amount + %s WHERE id = %s", (off, made["id"]))
    conn.commit()
    [finding] = _day(web).findings
    assert (finding.kind, finding.currency, finding.difference) == ("amount_differs", currency, off)
    assert finding.flagged is (currency not in tolerance)


def test_a_paid_payout_is_summed_and_compared_and_one_that_does_not_add_up_is_flagged(
    desk: LiveServer, stripe_api, conn
) -> None:
    stripe_api.set_clock(START - 3 * 86400)
    stripe_api.add_payment(4000)
    stripe_api.add_payment(2500)
    stripe_api.set_clock(START + H)
    good = stripe_api.add_payout("usd")
    _sync(desk, stripe_api)
    due = conn.execute("SELECT status, reconcile_due_at IS NOT NULL FROM payouts WHERE id = %s", (good["id"],))
    assert due.fetchone() == ("paid", True)
    conn.commit()
    [outcome] = reconciliation.reconcile_due_payouts(desk.deps.requests, datetime.now(UTC))
    assert outcome.run.scope == "payout" and outcome.counts == (0, 0) and outcome.run.txn_count == 3
    assert not reconciliation.reconcile_due_payouts(desk.deps.requests, datetime.now(UTC))  # once

    stripe_api.set_clock(START + 2 * H)
    stripe_api.add_payment(3000)
    stripe_api.set_clock(START + 3 * 86400)
    short = stripe_api.add_payout("usd", amount=2000)  # Stripe paid out less than the transactions add up to
    _sync(desk, stripe_api)
    [flagged] = reconciliation.reconcile_due_payouts(desk.deps.requests, datetime.now(UTC))
    [finding] = flagged.findings
    assert (finding.kind, finding.subject, finding.difference, finding.flagged) == (
        "payout_total_differs",
        short["id"],
        3000 - (3000 * 29 // 1000 + 30) - 2000,
        True,
    )
    desk.deliver()
    top, replies = threads(desk.slack.messages["C0FINANCE"])
    assert [m["text"][:1] for m in top] == ["✅", "🚩"] and short["id"] in replies[top[1]["ts"]][0]


def test_a_failed_payout_alerts_on_call_where_alert_routes_send_its_account(desk: LiveServer, stripe_api) -> None:
    stripe_api.set_clock(START - 3 * 86400)
    stripe_api.add_payment(9000, account="acct_1CONNECTED")
    stripe_api.set_clock(START + H)
    failed = stripe_api.add_payout("usd", account="acct_1CONNECTED", status="failed", failure_code="account_closed")
    _sync(desk, stripe_api)
    desk.deliver()
    [alert] = desk.slack.messages["C0CONNECTALERTS"]
    assert "account_closed" in alert["text"] and "The bank account has been closed." in alert["text"]
    assert failed["id"] in json.dumps(alert["blocks"]) and "C0ALERTS" not in desk.slack.messages


def test_a_day_found_by_the_worker_runs_once_and_its_payouts_with_it(desk: LiveServer, stripe_api, conn) -> None:
    stripe_api.set_clock(START - 3 * 86400)
    stripe_api.add_payment(4000)
    stripe_api.set_clock(START + H)
    stripe_api.add_payout("usd")
    _sync(desk, stripe_api)
    conn.execute("UPDATE payouts SET reconcile_due_at = NULL")  # as if its payout.paid was never handled
    conn.commit()
    ctx = desk.deps.requests
    end = day_bounds(DAY)[1]
    assert reconciliation.reconcile_due(ctx, end + timedelta(minutes=30)) == []  # late webhooks still arrive
    [outcome] = reconciliation.reconcile_due(ctx, end + timedelta(hours=2))
    assert outcome.run.started_via == "schedule" and outcome.counts == (0, 0)
    assert reconciliation.reconcile_due(ctx, end + timedelta(hours=3)) == []  # once, however many workers
    runs = conn.execute("SELECT scope, status FROM recon_runs ORDER BY id").fetchall()
    assert runs == [("day", "clean"), ("payout", "clean")]


def test_two_runs_of_one_day_never_overlap(desk: LiveServer, stripe_api) -> None:
    stripe_api.set_clock(START + H)
    stripe_api.add_payment(1000)
    _sync(desk, stripe_api)
    with db.connection(desk.deps.pool) as holder:
        assert finance_store.try_lock(holder, f"day:platform:{DAY}")
        with pytest.raises(ReconcileBusy):
            _day(desk)
        finance_store.unlock(holder, f"day:platform:{DAY}")
    results: list[object] = []

    def run() -> None:
        try:
            results.append(_day(desk).run.status)
        except ReconcileBusy as exc:
            results.append(exc)

    racers = [threading.Thread(target=run) for _ in range(3)]
    for t in racers:
        t.start()
    for t in racers:
        t.join(30)
    assert "clean" in results and len(results) == 3  # the others were told it is running elsewhere, or ran after


def test_stripe_down_keeps_the_days_result_and_says_so(desk: LiveServer, stripe_api) -> None:
    stripe_api.set_clock(START + H)
    stripe_api.add_payment(1000)
    _sync(desk, stripe_api)
    first = _day(desk)
    stripe_api.fail_next(10, status=500, path_prefix="/v1/balance_transactions")
    with pytest.raises(reconciliation.ReconcileFailed):
        _day(desk)
    with db.connection(desk.deps.pool) as c:
        assert finance_store.current_day_run(c, DAY, None).id == first.run.id
        assert finance_store.last_failed(c, scope="day", account=None, day=DAY, payout_id=None) is not None


def test_a_day_that_keeps_failing_is_told_once_then_given_up_on(desk: LiveServer, stripe_api, conn) -> None:
    ctx = desk.deps.requests
    due = day_bounds(DAY)[1] + timedelta(hours=2)
    stripe_api.fail_next(100, status=500, path_prefix="/v1/balance_transactions")
    assert reconciliation.reconcile_due(ctx, due) == []
    assert reconciliation.reconcile_due(ctx, due + timedelta(minutes=5)) == []  # not due again yet
    conn.execute("UPDATE finance_jobs SET attempts = 7")  # as if it had failed all morning
    conn.commit()
    assert reconciliation.reconcile_due(ctx, due + timedelta(minutes=20)) == []
    assert conn.execute("SELECT state, attempts, next_attempt_at FROM finance_jobs").fetchone() == ("failed", 8, None)
    conn.commit()
    assert reconciliation.reconcile_due(ctx, due + timedelta(hours=5)) == []  # given up: never claimed again
    desk.deliver()
    notes = [m["text"] for m in desk.slack.messages["C0FINANCE"]]
    assert len(notes) == 2 and "tries again" in notes[0] and "gave up after 8 attempts" in notes[1]
