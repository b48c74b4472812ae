"""The monthly export: exactly the month's refunds, disputes and audit records (UTC midnight to UTC midnight),
a CSV with the documented header, the chain head at its end; by DM to approvers only; posted on the 1st."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from conftest import replace_settings
from freezegun import freeze_time

from domain import stripe_mapping as sm
from domain.clock import utcnow
from domain.export import COLUMNS
from services import audit_trail, exports
from services.slack_delivery import build_client
from store import audit, db
from store import payments as payment_store

EDGES = {
    "before": datetime(2026, 10, 31, 23, 59, 59, 999999, tzinfo=UTC),
    "first": datetime(2026, 11, 1, 0, 0, 0, tzinfo=UTC),
    "last": datetime(2026, 11, 30, 23, 59, 59, 999999, tzinfo=UTC),
    "after": datetime(2026, 12, 1, 0, 0, 0, tzinfo=UTC),
}
IN_NOVEMBER = {"first", "last"}


def _refund(conn, name: str, amount: int, currency: str = "usd") -> str:
    refund_id = f"re_{name}Edge000000000001"
    obj = {
        "id": refund_id,
        "object": "refund",
        "amount": amount,
        "currency": currency,
        "charge": f"ch_{name}0001",
        "payment_intent": f"pi_{name}0001",
        "status": "succeeded",
        "reason": "requested_by_customer",
        "created": int(utcnow().timestamp()),
    }
    payment_store.save_refund(conn, sm.refund_from_stripe(obj, account=None, observed_at=utcnow()))
    return refund_id


def _dispute(conn, name: str, status: str = "needs_response", *, submitted: bool = False) -> str:
    dispute_id = f"dp_{name}Edge000000000001"
    obj = {
        "id": dispute_id,
        "object": "dispute",
        "amount": 4200,
        "currency": "usd",
        "charge": f"ch_{name}0002",
        "status": status,
        "reason": "fraudulent",
        "created": int(utcnow().timestamp()),
        "evidence_details": {
            "due_by": int((utcnow() + timedelta(days=7)).timestamp()),
            "submission_count": int(submitted),
        },
    }
    payment_store.save_dispute(conn, sm.dispute_from_stripe(obj, account=None, observed_at=utcnow()))
    return dispute_id


@pytest.fixture
def month(conn) -> dict[str, set[str]]:
    """A refund, a dispute and an audit record at each edge of November 2026, written at that frozen time."""
    made: dict[str, set[str]] = {"refund": set(), "dispute": set(), "audit": set()}
    expected: dict[str, set[str]] = {"refund": set(), "dispute": set(), "audit": set()}
    for name, when in EDGES.items():
        with freeze_time(when):
            refund = _refund(conn, name, 1234)
            dispute = _dispute(conn, name)
            audit.record(conn, actor="U0SUPPORT1", surface="slack", action="test.edge", subject=name, at=utcnow())
            audit_id = str(conn.execute("SELECT max(id) FROM audit_log").fetchone()[0])
        for kind, value in (("refund", refund), ("dispute", dispute), ("audit", audit_id)):
            made[kind].add(value)
            if name in IN_NOVEMBER:
                expected[kind].add(value)
    # A request made through the bot, linked to the first refund of November.
    conn.execute(
        "INSERT INTO refund_requests (payment_id, amount, currency, status, requested_by, requested_via, approvals,"
        " decided_by, decided_at, stripe_refund_id, expires_at) VALUES ('pi_first0001', 1234, 'usd', 'succeeded',"
        " 'U0SUPPORT1', 'modal', ARRAY['U0MANAGER1'], 'U0MANAGER1', now(), 're_firstEdge000000000001', now())"
    )
    # A dispute opened in October and lost in November is November's too; its deadline passed without evidence.
    with freeze_time(EDGES["before"] - timedelta(days=10)):
        old = _dispute(conn, "october")
    with freeze_time(EDGES["first"] + timedelta(days=3)):
        obj = {
            "id": old,
            "object": "dispute",
            "amount": 4200,
            "currency": "usd",
            "charge": "ch_october0002",
            "status": "lost",
            "reason": "fraudulent",
            "created": int((EDGES["before"] - timedelta(days=10)).timestamp()),
            "evidence_details": {"due_by": int((EDGES["before"] - timedelta(days=3)).timestamp())},
        }
        payment_store.save_dispute(conn, sm.dispute_from_stripe(obj, account=None, observed_at=utcnow()))
    expected["dispute"].add(old)
    conn.commit()
    return expected


def _rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode())))


def test_the_month_holds_exactly_its_refunds_disputes_and_audit_records(db_url, month, slack) -> None:
    pool = db.open_pool(db_url, max_size=2)
    out = io.BytesIO()
    names = exports.slack_names(build_client("xoxb-standin", slack.api_url))
    written = exports.write(pool, 2026, 11, out, fmt="csv", now=utcnow(), names=names)
    pool.close()
    reader = csv.reader(io.StringIO(out.getvalue().decode()))
    assert tuple(next(reader)) == COLUMNS  # Python's csv module reads the documented header
    rows = _rows(out.getvalue())
    by_kind: dict[str, set[str]] = {"refund": set(), "dispute": set(), "audit": set()}
    for row in rows[:-1]:
        by_kind[row["record"]].add(row["id"])
    assert by_kind == month
    assert written.rows == len(rows) - 1
    head = rows[-1]
    assert head["record"] == "chain_head" and head["hash"] == written.head_hash and len(head["hash"]) == 64
    refund = next(r for r in rows if r["id"] == "re_firstEdge000000000001")
    assert (refund["amount"], refund["amount_major"], refund["currency"], refund["status"]) == (
        "1234",
        "12.34",
        "usd",
        "succeeded",
    )
    assert (refund["requested_by"], refund["approved_by"], refund["via_bot"]) == ("U0SUPPORT1", "U0MANAGER1", "yes")
    assert (refund["requested_by_name"], refund["approved_by_name"]) == ("User U0SUPPORT1", "User U0MANAGER1")
    assert refund["at"] == "2026-11-01 00:00:00+00" and "re_firstEdge000000000001" in refund["stripe_ids"]
    assert json.loads(refund["details"])["request"] >= 1
    outside = next(r for r in rows if r["id"] == "re_lastEdge000000000001")
    assert (outside["via_bot"], outside["requested_by"]) == ("no", "")
    lost = next(r for r in rows if r["id"] == "dp_octoberEdge000000000001")
    assert (lost["status"], lost["deadline_met"]) == ("lost", "no") and json.loads(lost["details"])["closed_at"]
    audited = [r for r in rows if r["record"] == "audit"]
    assert [r["id"] for r in audited] == sorted((r["id"] for r in audited), key=int)  # in time order
    assert int(head["chain_seq"]) >= max(int(r["id"]) for r in audited)  # sealed before the export
    assert {r["actor_name"] for r in audited} == {"User U0SUPPORT1"}


def test_json_lines_hold_the_same_rows(db_url, month) -> None:
    pool = db.open_pool(db_url, max_size=2)
    out = io.BytesIO()
    exports.write(pool, 2026, 11, out, fmt="jsonl", now=utcnow())
    pool.close()
    lines = [json.loads(line) for line in out.getvalue().decode().splitlines()]
    assert {line["id"] for line in lines if line["record"] == "refund"} == month["refund"]
    assert {str(line["id"]) for line in lines if line["record"] == "audit"} == month["audit"]
    assert lines[-1]["record"] == "chain_head" and set(lines[-1]) == set(COLUMNS)
    assert all(set(line) == set(COLUMNS) for line in lines)


def test_export_is_refused_to_a_requester_and_sent_by_dm_to_an_approver(
    make_server_for, settings, slack, month
) -> None:
    web = make_server_for(replace_settings(settings, approvers=frozenset({"U0MANAGER1"})), slack)
    _, key = web.slash("export 2026-11", user_id="U0SUPPORT1")
    refused = slack.wait_for(lambda calls: any(c.method == "response_url" and c.key == key for c in calls))
    assert "approvers and admins" in slack.responses(key)[-1]["text"] and not slack.files
    assert refused

    _, key = web.slash("export 2026-11", user_id="U0MANAGER1")
    slack.wait_for(lambda calls: any(c.method == "response_url" and c.key == key for c in calls), timeout=20)
    assert "in your DMs" in slack.responses(key)[-1]["text"]
    [(file_id, sent)] = slack.files.items()
    assert sent.shared_to == ["U0MANAGER1"] and sent.filename == "refund-desk-2026-11.csv"
    rows = _rows(sent.content)
    assert {r["id"] for r in rows if r["record"] == "refund"} == month["refund"]
    [dm] = slack.messages["U0MANAGER1"]
    assert rows[-1]["hash"] in dm["text"] and "audit verify --anchor" in dm["text"]
    methods = [c.method for c in slack.calls if c.method.startswith(("files.", "upload"))]
    assert methods == ["files.getUploadURLExternal", "upload", "files.completeUploadExternal"]  # not files.upload


def test_the_worker_posts_last_months_report_on_the_first_once(db_url, month, slack) -> None:
    pool = db.open_pool(db_url, max_size=2)
    client = build_client("xoxb-standin", slack.api_url)
    assert exports.monthly_due(pool, client, "C0FINANCE", datetime(2026, 12, 15, tzinfo=UTC)) is None  # not the 1st
    written = exports.monthly_due(pool, client, "C0FINANCE", datetime(2026, 12, 1, 2, tzinfo=UTC))
    assert written is not None and written.rows > 0
    assert exports.monthly_due(pool, client, "C0FINANCE", datetime(2026, 12, 1, 3, tzinfo=UTC)) is None  # once
    [post] = slack.messages["C0FINANCE"]
    assert "2026-11" in post["text"] and written.head_hash in post["text"]
    assert audit_trail.verify(pool, anchor=bytes.fromhex(written.head_hash)).ok
    pool.close()
