"""The monthly export's rows, formatted by Postgres and streamed out with COPY: a month of millions
of audit records goes to the file a buffer at a time, never held in memory.

Every section selects the columns of domain.export.COLUMNS in that order, so the file has one header.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from domain.money import THREE_DECIMAL, ZERO_DECIMAL

# Times print as Postgres prints timestamptz, in UTC (the transaction sets it): 2026-11-01 00:00:00.5+00.
_MAJOR = """CASE WHEN {c} = ANY(%(zero)s) THEN {a}::text
     WHEN {c} = ANY(%(three)s) THEN to_char({a} / 1000.0, 'FM999999999999990.000')
     ELSE to_char({a} / 100.0, 'FM999999999999990.00') END"""
CLOSED = ("won", "lost", "warning_closed", "prevented")

REFUNDS = f"""
SELECT 'refund' AS record, r.id, r.stripe_created AS at, r.account, r.amount, r.currency,
       {_MAJOR.format(c="r.currency", a="r.amount")} AS amount_major,
       r.status, coalesce(q.reason, r.reason) AS reason,
       q.requested_by, %(names)s::jsonb ->> q.requested_by AS requested_by_name,
       array_to_string(q.approvals, ';') AS approved_by,
       (SELECT string_agg(coalesce(%(names)s::jsonb ->> u, ''), ';') FROM unnest(q.approvals) u) AS approved_by_name,
       CASE WHEN q.id IS NULL THEN 'no' ELSE 'yes' END AS via_bot,
       NULL AS owner, NULL AS owner_name, NULL AS evidence_due_by, NULL AS deadline_met,
       concat_ws(' ', r.id, r.charge_id, r.payment_intent_id) AS stripe_ids,
       NULL AS actor, NULL AS actor_name, NULL AS surface, NULL AS action, NULL AS subject,
       CASE WHEN q.id IS NOT NULL THEN jsonb_build_object(
           'request', q.id, 'requested_via', q.requested_via, 'requested_at', q.created_at,
           'decided_at', q.decided_at, 'request_status', q.status)::text END AS details,
       NULL AS chain_seq, NULL AS hash
FROM refunds r
LEFT JOIN LATERAL (
    SELECT * FROM refund_requests q WHERE q.id = r.request_id OR q.stripe_refund_id = r.id
    ORDER BY q.id = r.request_id DESC LIMIT 1
) q ON true
WHERE r.stripe_created >= %(start)s AND r.stripe_created < %(end)s
ORDER BY r.stripe_created, r.id
"""  # noqa: S608 - fixed fragments only

DISPUTES = f"""
SELECT 'dispute' AS record, d.id, d.stripe_created AS at, d.account, d.amount, d.currency,
       {_MAJOR.format(c="d.currency", a="d.amount")} AS amount_major,
       d.status, d.reason,
       NULL AS requested_by, NULL AS requested_by_name, NULL AS approved_by, NULL AS approved_by_name,
       NULL AS via_bot,
       d.owner, %(names)s::jsonb ->> d.owner AS owner_name,
       d.evidence_due_by AS evidence_due_by,
       CASE WHEN d.evidence_due_by IS NULL THEN NULL
            WHEN d.evidence_submitted THEN 'yes'
            WHEN d.evidence_due_by <= %(now)s THEN 'no'
            ELSE 'pending' END AS deadline_met,
       concat_ws(' ', d.id, d.charge_id, d.payment_intent_id) AS stripe_ids,
       NULL AS actor, NULL AS actor_name, NULL AS surface, NULL AS action, NULL AS subject,
       jsonb_strip_nulls(jsonb_build_object(
           'closed_at', CASE WHEN d.status = ANY(%(closed)s) THEN d.observed_at END,
           'inquiry', d.status LIKE 'warning%%'))::text AS details,
       NULL AS chain_seq, NULL AS hash
FROM disputes d
WHERE d.stripe_created >= %(start)s AND d.stripe_created < %(end)s
   OR d.status = ANY(%(closed)s) AND d.observed_at >= %(start)s AND d.observed_at < %(end)s
ORDER BY d.stripe_created, d.id
"""  # noqa: S608 - fixed fragments only

# Each record as it is; the chain's head closes the file. (Each record's own link was left out: joining
# a million links cost more than the rest of the export, and the head is what an auditor anchors.)
AUDIT = """
SELECT 'audit' AS record, a.id, a.at,
       NULL AS account, NULL AS amount, NULL AS currency, NULL AS amount_major, NULL AS status, NULL AS reason,
       NULL AS requested_by, NULL AS requested_by_name, NULL AS approved_by, NULL AS approved_by_name,
       NULL AS via_bot, NULL AS owner, NULL AS owner_name, NULL AS evidence_due_by, NULL AS deadline_met,
       array_to_string(a.stripe_ids, ' ') AS stripe_ids,
       a.actor, %(names)s::jsonb ->> a.actor AS actor_name, a.surface, a.action, a.subject,
       a.details::text AS details, NULL AS chain_seq, NULL AS hash
FROM audit_log a
WHERE a.at >= %(start)s AND a.at < %(end)s
ORDER BY a.at, a.id
"""

# The people the month's refunds and disputes name (Slack user ids), to look their names up once each;
# audit records by the same people get their names too (reading a million actors for more would
# cost a scan of the month).
PEOPLE = """
SELECT DISTINCT u FROM (
    SELECT q.requested_by AS u FROM refund_requests q
    WHERE q.stripe_refund_id IN (SELECT id FROM refunds WHERE stripe_created >= %(start)s AND stripe_created < %(end)s)
    UNION ALL
    SELECT unnest(q.approvals) FROM refund_requests q
    WHERE q.stripe_refund_id IN (SELECT id FROM refunds WHERE stripe_created >= %(start)s AND stripe_created < %(end)s)
    UNION ALL
    SELECT owner FROM disputes WHERE stripe_created >= %(start)s AND stripe_created < %(end)s
) people
WHERE u ~ '^[UW][A-Z0-9]{2,}$'
ORDER BY u
LIMIT %(limit)s
"""

SNAPSHOT = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"
UTC = "SET LOCAL TIME ZONE 'UTC'"


def snapshot(conn: psycopg.Connection) -> None:
    """Make the caller's transaction read one snapshot (the sections agree with each other and the
    head) and print times in UTC."""
    conn.execute(SNAPSHOT)
    conn.execute(UTC)


def people(conn: psycopg.Connection, start: datetime, end: datetime, *, limit: int = 1000) -> list[str]:
    """Slack user ids named in the month's rows."""
    return [row[0] for row in conn.execute(PEOPLE, {"start": start, "end": end, "limit": limit})]


def copy_out(
    conn: psycopg.Connection,
    start: datetime,
    end: datetime,
    *,
    names: dict[str, str],
    now: datetime,
    fmt: str,
    write: Callable[[bytes], Any],
) -> int:
    """COPY the month's refunds, disputes and audit records to `write`, in that order; return the rows written.

    CSV has one header line; JSON lines are one object per row, with the same keys.
    """
    params = {
        "start": start,
        "end": end,
        "now": now,
        "names": Jsonb(names),
        "zero": sorted(ZERO_DECIMAL),
        "three": sorted(THREE_DECIMAL),
        "closed": list(CLOSED),
    }
    rows = 0
    for i, query in enumerate((REFUNDS, DISPUTES, AUDIT)):
        if fmt == "csv":
            statement = f"COPY ({query}) TO STDOUT (FORMAT csv{', HEADER' if i == 0 else ''})"
        else:
            # One JSON text per line; a delimiter and quote no JSON text holds keep COPY from quoting it.
            statement = (
                f"COPY (SELECT row_to_json(x)::text FROM ({query}) x) TO STDOUT "  # noqa: S608 - a fixed section
                "(FORMAT csv, DELIMITER E'\\x02', QUOTE E'\\x01')"
            )
        with conn.cursor() as cur:
            with cur.copy(statement, params) as copy:
                for data in copy:
                    write(data)
            rows += max(cur.rowcount, 0)
    return rows
