"""refund-desk reconcile / export / audit: exit codes, JSON, progress on stderr, the chain head printed."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from conftest import STRIPE_KEY, WEBHOOK_SECRET

from cli import main
from domain.finance import day_bounds, previous_day
from store import db
from store import finance as finance_store

DAY = previous_day(datetime.now(UTC))
START = int(day_bounds(DAY)[0].timestamp())


@pytest.fixture
def run(db_url: str, stripe_api):
    env = {
        "DATABASE_URL": db_url,
        "STRIPE_SECRET_KEY": STRIPE_KEY,
        "STRIPE_API_BASE": stripe_api.url,
        "LOG_LEVEL": "ERROR",
    }

    def invoke(*args: str):
        return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)

    return invoke


@pytest.fixture
def day(web, stripe_api) -> dict:
    stripe_api.deliver_webhooks(f"{web.url}/webhooks/stripe", WEBHOOK_SECRET)
    stripe_api.set_clock(START + 3600)
    made = stripe_api.add_payment(4200)
    stripe_api.flush_webhooks()
    web.drain()
    return made


def test_a_clean_day_exits_0_and_a_flagged_one_1_with_every_item_in_json(run, day, conn) -> None:
    clean = run("reconcile", "--date", str(DAY))
    assert clean.exit_code == 0, clean.output
    assert "clean" in clean.stdout and "reconciling" in clean.stderr
    conn.execute("UPDATE payments SET amount_captured = amount_captured - 1000")
    conn.commit()
    flagged = run("reconcile", "--date", str(DAY), "--format", "json")
    assert flagged.exit_code == 1
    result = json.loads(flagged.stdout)
    [one] = result["runs"]
    assert one["flagged"] and one["changes"]["new_count"] == 1 and one["changes"]["replaced"] is not None
    [finding] = one["findings"]
    assert (finding["kind"], finding["subject"], finding["difference"]) == ("amount_differs", day["charge"]["id"], 1000)
    assert result["problems"] == []


def test_a_day_that_could_not_run_exits_2(run, day, stripe_api, db_url) -> None:
    stripe_api.fail_next(20, status=500, path_prefix="/v1/balance_transactions")
    down = run("reconcile", "--date", str(DAY), "--account", "acct_1NOTOURS")
    assert down.exit_code == 2 and "could not run" in down.stderr
    pool = db.open_pool(db_url, max_size=1)
    with db.connection(pool) as holder:
        finance_store.try_lock(holder, f"day:platform:{DAY}")
        busy = run("reconcile", "--date", str(DAY))
        finance_store.unlock(holder, f"day:platform:{DAY}")
    pool.close()
    assert busy.exit_code == 2 and "elsewhere" in busy.stderr
    assert run("reconcile", "--date", "2026-02-30").exit_code == 2  # a usage error
    assert run("reconcile").exit_code == 2


def test_export_writes_the_file_and_prints_the_chain_head(run, tmp_path, day) -> None:
    month = str(DAY)[:7]
    out = tmp_path / "export.csv"
    result = run("export", "--month", month, "--out", str(out))
    assert result.exit_code == 0, result.output
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    head = rows[-1]
    assert head["record"] == "chain_head" and f"sha256 {head['hash']}" in result.stderr
    assert any(r["record"] == "audit" for r in rows)
    assert run("audit", "verify", "--anchor", head["hash"]).exit_code == 0
    assert run("export", "--month", "2026-13").exit_code == 2


def test_audit_verify_and_seal(run, day) -> None:
    sealed = run("audit", "seal")
    assert sealed.exit_code == 0 and "sealed" in sealed.output
    verified = run("audit", "verify")
    assert verified.exit_code == 0 and "OK" in verified.output and "head: position" in verified.output
    assert run("audit", "verify", "--anchor", "00" * 32).exit_code == 1
    assert run("audit", "verify", "--anchor", "not-hex").exit_code == 2
