"""Finance in Postgres: payouts, reconciliation runs and findings, the day's balance transactions
staged and compared with our records in SQL, and claims on scheduled finance jobs.

A day may hold a million balance transactions: they are staged page by page (COPY into a
temporary table of the run's own connection) and compared with payments, refunds, disputes and
payouts by one join; only the transactions that differ come back to Python, through a
server-side cursor.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime, timedelta

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from domain.finance import COMPARED, Finding, Item, Payout, Run, RunChanges, StoredFinding, Txn, newer_payout

# --- payouts --------------------------------------------------------------------------------------------

_PAYOUT_COLUMNS = [f.name for f in fields(Payout)]
INSERT_PAYOUT = f"""
INSERT INTO payouts ({", ".join(_PAYOUT_COLUMNS)}) VALUES ({", ".join(f"%({c})s" for c in _PAYOUT_COLUMNS)})
ON CONFLICT (id) DO NOTHING RETURNING id
"""  # noqa: S608 - column names from the dataclass
LOCK_PAYOUT = f"SELECT {', '.join(_PAYOUT_COLUMNS)} FROM payouts WHERE id = %(id)s FOR UPDATE"  # noqa: S608
GET_PAYOUT = LOCK_PAYOUT.removesuffix(" FOR UPDATE")
UPDATE_PAYOUT = (
    "UPDATE payouts SET "  # noqa: S608
    + ", ".join(f"{c} = %({c})s" for c in _PAYOUT_COLUMNS if c != "id")
    + ", synced_at = now() WHERE id = %(id)s"
)
PAYOUT_DUE = "UPDATE payouts SET reconcile_due_at = %(at)s WHERE id = %(id)s"
# A lease: the payout is pushed back while one worker reconciles it; success clears it.
CLAIM_DUE_PAYOUT = f"""
UPDATE payouts SET reconcile_due_at = %(lease)s
WHERE id = (SELECT id FROM payouts WHERE reconcile_due_at <= %(now)s ORDER BY reconcile_due_at
            LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING {", ".join(_PAYOUT_COLUMNS)}
"""  # noqa: S608
PAYOUT_DONE = "UPDATE payouts SET reconcile_due_at = NULL WHERE id = %(id)s"


@dataclass(frozen=True, slots=True)
class SavedPayout:
    """A payout snapshot merged: what we held before, and what we hold now (None: unchanged)."""

    before: Payout | None
    after: Payout | None


def save_payout(conn: psycopg.Connection, payout: Payout) -> SavedPayout:
    """Merge a payout snapshot (an older one, or one stepping back from paid or failed, changes nothing)."""
    params = asdict(payout)
    if conn.execute(INSERT_PAYOUT, params).fetchone() is not None:
        return SavedPayout(None, payout)
    with conn.cursor(row_factory=class_row(Payout)) as cur:
        current = cur.execute(LOCK_PAYOUT, params).fetchone()
    if not newer_payout(current, payout):
        return SavedPayout(current, None)
    conn.execute(UPDATE_PAYOUT, params)
    return SavedPayout(current, payout)


def get_payout(conn: psycopg.Connection, payout_id: str) -> Payout | None:
    """A stored payout."""
    with conn.cursor(row_factory=class_row(Payout)) as cur:
        return cur.execute(GET_PAYOUT, {"id": payout_id}).fetchone()


def payout_due(conn: psycopg.Connection, payout_id: str, at: datetime | None) -> None:
    """Ask for the payout to be reconciled at `at` (None: nothing left to do)."""
    conn.execute(PAYOUT_DUE if at is not None else PAYOUT_DONE, {"id": payout_id, "at": at})


def claim_due_payout(conn: psycopg.Connection, now: datetime, lease: timedelta) -> Payout | None:
    """A payout due for reconciliation, leased to the caller until now + lease."""
    with conn.cursor(row_factory=class_row(Payout)) as cur:
        return cur.execute(CLAIM_DUE_PAYOUT, {"now": now, "lease": now + lease}).fetchone()


# --- runs -----------------------------------------------------------------------------------------------

_RUN_COLUMNS = ", ".join(f.name for f in fields(Run))
_FINDING_COLUMNS = ", ".join(f.name for f in fields(StoredFinding))

# Session-level: held by the run's own connection for as long as it pages Stripe, released at the
# end (or when the connection dies), so two processes never run one day or payout at once.
TRY_RUN_LOCK = "SELECT pg_try_advisory_lock(hashtextextended('refund-desk-recon:' || %(key)s, 0))"
RUN_UNLOCK = "SELECT pg_advisory_unlock(hashtextextended('refund-desk-recon:' || %(key)s, 0))"

START_RUN = """
INSERT INTO recon_runs (scope, account, day, payout_id, started_via, started_by, started_at)
VALUES (%(scope)s, %(account)s, %(day)s, %(payout_id)s, %(via)s, %(by)s, %(now)s)
RETURNING id
"""
FAIL_RUN = "UPDATE recon_runs SET status = 'failed', error = %(error)s, finished_at = %(now)s WHERE id = %(id)s"
CURRENT_DAY = f"""
SELECT {_RUN_COLUMNS} FROM recon_runs
WHERE scope = 'day' AND current AND day = %(day)s AND account IS NOT DISTINCT FROM %(account)s
"""  # noqa: S608
CURRENT_PAYOUT = f"SELECT {_RUN_COLUMNS} FROM recon_runs WHERE scope = 'payout' AND current AND payout_id = %(id)s"  # noqa: S608
DAY_RUNS = f"""
SELECT {_RUN_COLUMNS} FROM recon_runs WHERE scope = 'day' AND current AND day = %(day)s
ORDER BY account NULLS FIRST
"""  # noqa: S608
GET_RUN = f"SELECT {_RUN_COLUMNS} FROM recon_runs WHERE id = %(id)s"  # noqa: S608
UNCURRENT = "UPDATE recon_runs SET current = false WHERE id = %(id)s"
FINISH_RUN = """
UPDATE recon_runs SET status = %(status)s, flagged = %(flagged)s, current = true, txn_count = %(txn_count)s,
       totals = %(totals)s, changes = %(changes)s, replaces = %(replaces)s, finished_at = %(now)s
WHERE id = %(id)s
"""
FINDINGS = f"""
SELECT {_FINDING_COLUMNS} FROM recon_findings WHERE run_id = %(run)s
ORDER BY flagged DESC, abs(difference) DESC, id LIMIT %(limit)s
"""  # noqa: S608
ALL_FINDINGS = f"SELECT {_FINDING_COLUMNS} FROM recon_findings WHERE run_id = %(run)s ORDER BY id"  # noqa: S608
FINDING_COUNTS = """
SELECT count(*), count(*) FILTER (WHERE flagged) FROM recon_findings WHERE run_id = %(run)s
"""
INSERT_FINDING = """
INSERT INTO recon_findings (run_id, kind, subject, currency, expected, actual, difference, flagged, cause, stripe_ids,
                            details)
VALUES (%(run)s, %(kind)s, %(subject)s, %(currency)s, %(expected)s, %(actual)s, %(difference)s, %(flagged)s,
        %(cause)s, %(stripe_ids)s, %(details)s)
ON CONFLICT (run_id, kind, subject, currency) DO UPDATE
SET expected = recon_findings.expected + EXCLUDED.expected, actual = recon_findings.actual + EXCLUDED.actual,
    difference = recon_findings.difference + EXCLUDED.difference,
    flagged = recon_findings.flagged OR EXCLUDED.flagged,
    stripe_ids = recon_findings.stripe_ids || EXCLUDED.stripe_ids
"""
# What the run it replaces found and this one does not: resolved since.
RESOLVE = """
UPDATE recon_findings o SET resolved_at = %(now)s, resolved_by_run = %(run)s
WHERE o.run_id = %(old)s AND o.resolved_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM recon_findings n
                  WHERE n.run_id = %(run)s AND (n.kind, n.subject, n.currency) = (o.kind, o.subject, o.currency))
RETURNING o.kind, o.subject, o.currency
"""
NEW_SINCE = """
SELECT n.kind, n.subject, n.currency FROM recon_findings n
WHERE n.run_id = %(run)s
  AND NOT EXISTS (SELECT 1 FROM recon_findings o
                  WHERE o.run_id = %(old)s AND (o.kind, o.subject, o.currency) = (n.kind, n.subject, n.currency))
ORDER BY n.flagged DESC, abs(n.difference) DESC
"""
LAST_FAILED = f"""
SELECT {_RUN_COLUMNS} FROM recon_runs
WHERE scope = %(scope)s AND status = 'failed' AND account IS NOT DISTINCT FROM %(account)s
  AND day IS NOT DISTINCT FROM %(day)s AND payout_id IS NOT DISTINCT FROM %(payout_id)s
ORDER BY id DESC LIMIT 1
"""  # noqa: S608

KNOWN_ACCOUNTS = """
SELECT account FROM (
    SELECT DISTINCT account FROM payments WHERE account IS NOT NULL
    UNION SELECT DISTINCT account FROM refunds WHERE account IS NOT NULL
    UNION SELECT DISTINCT account FROM disputes WHERE account IS NOT NULL
    UNION SELECT DISTINCT account FROM payouts WHERE account IS NOT NULL
) a ORDER BY account
"""


def try_lock(conn: psycopg.Connection, key: str) -> bool:
    """Take the run lock of a day or payout for this session; False when another session holds it."""
    return bool(conn.execute(TRY_RUN_LOCK, {"key": key}).fetchone()[0])


def unlock(conn: psycopg.Connection, key: str) -> None:
    """Release the run lock."""
    conn.execute(RUN_UNLOCK, {"key": key})


def start_run(
    conn: psycopg.Connection,
    *,
    scope: str,
    account: str | None,
    day: date | None,
    payout_id: str | None,
    via: str,
    by: str | None,
    now: datetime,
) -> int:
    """Record a run as started."""
    row = conn.execute(
        START_RUN,
        {"scope": scope, "account": account, "day": day, "payout_id": payout_id, "via": via, "by": by, "now": now},
    ).fetchone()
    return int(row[0])


def fail_run(conn: psycopg.Connection, run_id: int, error: str, now: datetime) -> None:
    """Record that a run could not finish (the day's result stays what it was)."""
    conn.execute(FAIL_RUN, {"id": run_id, "error": error[:1000], "now": now})


def _run(conn: psycopg.Connection, sql: str, params: dict) -> Run | None:
    with conn.cursor(row_factory=class_row(Run)) as cur:
        return cur.execute(sql, params).fetchone()


def current_day_run(conn: psycopg.Connection, day: date, account: str | None) -> Run | None:
    """The result of a day for an account: its newest finished run."""
    return _run(conn, CURRENT_DAY, {"day": day, "account": account})


def current_payout_run(conn: psycopg.Connection, payout_id: str) -> Run | None:
    """The newest finished run of a payout."""
    return _run(conn, CURRENT_PAYOUT, {"id": payout_id})


def get_run(conn: psycopg.Connection, run_id: int) -> Run | None:
    """A run by id."""
    return _run(conn, GET_RUN, {"id": run_id})


def day_runs(conn: psycopg.Connection, day: date) -> list[Run]:
    """The result of a day for every account reconciled, the platform first."""
    with conn.cursor(row_factory=class_row(Run)) as cur:
        return cur.execute(DAY_RUNS, {"day": day}).fetchall()


def last_failed(
    conn: psycopg.Connection, *, scope: str, account: str | None, day: date | None, payout_id: str | None
) -> Run | None:
    """The newest failed run of a day or payout (why it has no result)."""
    return _run(conn, LAST_FAILED, {"scope": scope, "account": account, "day": day, "payout_id": payout_id})


def finish_run(
    conn: psycopg.Connection,
    run_id: int,
    *,
    status: str,
    flagged: bool,
    txn_count: int,
    totals: list[dict],
    previous: Run | None,
    now: datetime,
    keep: int = 20,
) -> RunChanges:
    """Make the run the current result of its day or payout; mark what it no longer finds resolved."""
    changes = RunChanges()
    if previous is not None:
        conn.execute(UNCURRENT, {"id": previous.id})
        resolved = conn.execute(RESOLVE, {"old": previous.id, "run": run_id, "now": now}).fetchall()
        with conn.cursor() as cur:
            cur.execute(NEW_SINCE, {"old": previous.id, "run": run_id})
            new = cur.fetchall()
        old_count = finding_counts(conn, previous.id)[0]
        changes = RunChanges(
            previous.id,
            tuple(sorted(tuple(r) for r in resolved))[:keep],
            tuple(tuple(r) for r in new)[:keep],
            len(resolved),
            len(new),
            old_count - len(resolved),
        )
    conn.execute(
        FINISH_RUN,
        {
            "id": run_id,
            "status": status,
            "flagged": flagged,
            "txn_count": txn_count,
            "totals": Jsonb(totals),
            "changes": Jsonb(changes.to_json()),
            "replaces": previous.id if previous else None,
            "now": now,
        },
    )
    return changes


def add_findings(conn: psycopg.Connection, run_id: int, findings: Iterable[Finding]) -> None:
    """Store findings of a run (a second finding of the same kind about the same id adds to the first)."""
    params = [
        {
            "run": run_id,
            "kind": f.kind,
            "subject": f.subject,
            "currency": f.currency,
            "expected": f.expected,
            "actual": f.actual,
            "difference": f.difference,
            "flagged": f.flagged,
            "cause": f.cause,
            "stripe_ids": list(f.stripe_ids),
            "details": Jsonb(dict(f.details)),
        }
        for f in findings
    ]
    if params:
        with conn.cursor() as cur:
            cur.executemany(INSERT_FINDING, params)


def findings(conn: psycopg.Connection, run_id: int, *, limit: int = 50) -> list[StoredFinding]:
    """A run's findings, flagged and largest first."""
    with conn.cursor(row_factory=class_row(StoredFinding)) as cur:
        return cur.execute(FINDINGS, {"run": run_id, "limit": limit}).fetchall()


def iter_findings(conn: psycopg.Connection, run_id: int) -> Iterator[StoredFinding]:
    """Every finding of a run, streamed (inside a transaction)."""
    with conn.cursor(name="recon_findings_all", row_factory=class_row(StoredFinding)) as cur:
        cur.itersize = 2000
        cur.execute(ALL_FINDINGS, {"run": run_id})
        yield from cur


def finding_counts(conn: psycopg.Connection, run_id: int) -> tuple[int, int]:
    """(findings, flagged findings) of a run."""
    row = conn.execute(FINDING_COUNTS, {"run": run_id}).fetchone()
    return int(row[0]), int(row[1])


def known_accounts(conn: psycopg.Connection) -> list[str]:
    """Every connected account our records mention."""
    return [row[0] for row in conn.execute(KNOWN_ACCOUNTS)]


# --- staging and comparing ------------------------------------------------------------------------------

STAGING = """
CREATE TEMP TABLE IF NOT EXISTS recon_txns (
    id text NOT NULL, type text NOT NULL, category text NOT NULL, source text,
    amount bigint NOT NULL, fee bigint NOT NULL, net bigint NOT NULL, currency text NOT NULL,
    converted boolean NOT NULL, created bigint NOT NULL
)
"""
CLEAR_STAGING = "TRUNCATE recon_txns"
COPY_TXNS = "COPY recon_txns (id, type, category, source, amount, fee, net, currency, converted, created) FROM STDIN"
INDEX_STAGING = "CREATE INDEX IF NOT EXISTS recon_txns_source ON recon_txns (source)"
ANALYZE_STAGING = "ANALYZE recon_txns"
DROP_STAGING = "DROP TABLE IF EXISTS recon_txns, recon_items"

# Each staged transaction beside what our records say it should be, signed as it moves the balance
# (NULL: we hold no record of its source). Fees and other Stripe-only movements are their own
# expectation: we keep no record of them. A converted transaction (settled in another currency)
# has its presence checked, not its amount.
ITEMS = """
CREATE TEMP TABLE recon_items AS
SELECT i.*, CASE WHEN i.local_amount IS NOT NULL AND i.converted THEN i.actual ELSE i.local_amount END AS expected
FROM (
    SELECT t.id AS txn_id, t.category, t.type, t.currency, t.amount AS actual, t.fee, t.net, t.converted, t.source,
           CASE t.category
               WHEN 'charges' THEN p.amount_captured
               WHEN 'refunds' THEN -r.amount
               WHEN 'refund_reversals' THEN CASE WHEN r.id IS NULL THEN NULL
                                                 WHEN r.status IN ('failed', 'canceled') THEN r.amount ELSE 0 END
               WHEN 'dispute_withdrawals' THEN -d.amount
               WHEN 'dispute_reinstatements' THEN CASE WHEN d.id IS NULL THEN NULL
                                                       WHEN d.status = 'won' THEN d.amount ELSE 0 END
               WHEN 'payouts' THEN CASE WHEN po.id IS NULL THEN NULL
                                        WHEN t.type = 'payout' THEN -po.amount
                                        WHEN po.status IN ('failed', 'canceled') THEN po.amount ELSE 0 END
               ELSE t.amount
           END AS local_amount,
           coalesce(p.currency, r.currency, d.currency, po.currency) AS local_currency,
           coalesce(p.charge_status, r.status, d.status, po.status) AS local_status,
           coalesce(p.payment_intent_id, r.payment_intent_id, d.payment_intent_id) AS payment_intent_id,
           coalesce(r.charge_id, d.charge_id) AS charge_id,
           r.request_id
    FROM recon_txns t
    LEFT JOIN payments p ON t.category = 'charges' AND p.charge_id = t.source
    LEFT JOIN refunds r ON t.category IN ('refunds', 'refund_reversals') AND r.id = t.source
    LEFT JOIN disputes d ON t.category IN ('dispute_withdrawals', 'dispute_reinstatements') AND d.id = t.source
    LEFT JOIN payouts po ON t.category = 'payouts' AND po.id = t.source
) i
"""
TOTALS = """
SELECT currency, category, sum(actual)::bigint, sum(coalesce(expected, 0))::bigint, count(*) FROM recon_items
GROUP BY currency, category
UNION ALL
SELECT currency, 'fees', -sum(fee)::bigint, -sum(fee)::bigint, 0 FROM recon_items WHERE fee <> 0 GROUP BY currency
"""
DIFFERING = """
SELECT txn_id, category, currency, actual, expected, converted, source, local_currency, local_amount, local_status,
       payment_intent_id, charge_id, request_id
FROM recon_items
WHERE category = ANY(%(compared)s)
  AND (expected IS DISTINCT FROM actual OR (NOT converted AND local_currency IS DISTINCT FROM currency))
ORDER BY txn_id
"""
# Refunds of ours made that day whose balance transaction Stripe does not have.
LOCAL_REFUNDS_MISSING = """
SELECT r.id, r.currency, r.amount, r.status, r.charge_id, r.payment_intent_id, r.request_id
FROM refunds r
WHERE r.stripe_created >= %(start)s AND r.stripe_created < %(end)s
  AND r.account IS NOT DISTINCT FROM %(account)s
  AND r.status <> 'requires_action'
  AND NOT EXISTS (SELECT 1 FROM recon_txns t WHERE t.source = r.id AND t.category = 'refunds')
ORDER BY r.id
"""
# Requests that finished as refunded that day, naming a refund we hold no record of.
REQUESTS_WITHOUT_REFUND = """
SELECT q.id, q.stripe_refund_id, q.amount, q.currency, q.payment_id
FROM refund_requests q
WHERE q.status = 'succeeded' AND q.stripe_refund_id IS NOT NULL
  AND q.account IS NOT DISTINCT FROM %(account)s
  AND q.updated_at >= %(start)s AND q.updated_at < %(end)s
  AND NOT EXISTS (SELECT 1 FROM refunds r WHERE r.id = q.stripe_refund_id)
ORDER BY q.id
"""
PAYOUT_CONTENTS = """
SELECT coalesce(sum(net), 0)::bigint FROM recon_txns
WHERE NOT (type IN ('payout', 'payout_failure', 'payout_cancel') AND source = %(payout)s)
"""
PAYOUTS_STAGED = "SELECT DISTINCT source FROM recon_txns WHERE type = 'payout' AND source IS NOT NULL ORDER BY 1"


def stage(conn: psycopg.Connection) -> None:
    """An empty staging table on this connection (temporary: no WAL, gone with the session)."""
    conn.execute(STAGING)
    conn.execute(CLEAR_STAGING)


def load(conn: psycopg.Connection, txns: Iterable[Txn]) -> int:
    """COPY a page of balance transactions into the staging table; return how many."""
    n = 0
    with conn.cursor() as cur, cur.copy(COPY_TXNS) as copy:
        for t in txns:
            copy.write_row(
                (t.id, t.type, t.category, t.source, t.amount, t.fee, t.net, t.currency, t.converted, t.created)
            )
            n += 1
    return n


def compare(conn: psycopg.Connection) -> list[tuple[str, str, int, int, int]]:
    """Join the staged transactions with our records; (currency, category, Stripe, ours, count) totals."""
    conn.execute(INDEX_STAGING)
    conn.execute(ANALYZE_STAGING)
    conn.execute("DROP TABLE IF EXISTS recon_items")
    conn.execute(ITEMS)
    return [(r[0], r[1], int(r[2]), int(r[3]), int(r[4])) for r in conn.execute(TOTALS)]


def differing(conn: psycopg.Connection, *, batch: int = 2000) -> Iterator[Item]:
    """Staged transactions whose money or currency differs from our records, streamed (inside a transaction)."""
    with conn.cursor(name="recon_differing") as cur:
        cur.itersize = batch
        cur.execute(DIFFERING, {"compared": sorted(COMPARED)})
        for row in cur:
            (
                txn_id,
                category,
                currency,
                actual,
                expected,
                converted,
                source,
                local_currency,
                local_amount,
                local_status,
                payment_intent_id,
                charge_id,
                request_id,
            ) = row
            yield Item(
                category=category,
                currency=currency,
                actual=actual,
                expected=expected,
                txn_id=txn_id,
                source=source,
                converted=converted,
                local_currency=local_currency,
                local_amount=local_amount,
                local_status=local_status,
                related=tuple(i for i in (charge_id, payment_intent_id) if i and i != source),
                request_id=request_id,
            )


def local_refunds_missing(
    conn: psycopg.Connection, account: str | None, start: datetime, end: datetime
) -> Iterator[Item]:
    """Our refunds of the day with no balance transaction that day in Stripe, streamed (inside a transaction)."""
    with conn.cursor(name="recon_local_refunds") as cur:
        cur.itersize = 2000
        cur.execute(LOCAL_REFUNDS_MISSING, {"account": account, "start": start, "end": end})
        for refund_id, currency, amount, status, charge_id, payment_intent_id, request_id in cur:
            yield Item(
                category="refunds",
                currency=currency,
                actual=0,
                expected=-amount,
                source=refund_id,
                local_currency=currency,
                local_amount=-amount,
                local_status=status,
                related=tuple(i for i in (charge_id, payment_intent_id) if i),
                request_id=request_id,
                local_kind="refund_missing_in_stripe",
            )


@dataclass(frozen=True, slots=True)
class RequestWithoutRefund:
    """A request marked refunded whose refund we hold no record of."""

    id: int
    stripe_refund_id: str
    amount: int
    currency: str
    payment_id: str


def requests_without_refund(
    conn: psycopg.Connection, account: str | None, start: datetime, end: datetime
) -> list[RequestWithoutRefund]:
    """Requests that finished as refunded in [start, end) naming a refund we hold no record of."""
    with conn.cursor(row_factory=class_row(RequestWithoutRefund)) as cur:
        return cur.execute(REQUESTS_WITHOUT_REFUND, {"account": account, "start": start, "end": end}).fetchall()


def payout_contents(conn: psycopg.Connection, payout_id: str) -> int:
    """What the staged transactions of a payout add up to, without the payout's own."""
    return int(conn.execute(PAYOUT_CONTENTS, {"payout": payout_id}).fetchone()[0])


def staged_payouts(conn: psycopg.Connection) -> list[str]:
    """Payouts among the staged transactions."""
    return [row[0] for row in conn.execute(PAYOUTS_STAGED)]


def drop_staging(conn: psycopg.Connection) -> None:
    """Drop the run's temporary tables (they would go with the session anyway; the pool keeps sessions)."""
    conn.execute(DROP_STAGING)


# --- scheduled jobs -------------------------------------------------------------------------------------

# Claimed once; a job left running by a worker that died (lease passed), or failed and due again,
# is claimed by the next one.
CLAIM_JOB = """
INSERT INTO finance_jobs (kind, key, state, claimed_at) VALUES (%(kind)s, %(key)s, 'running', %(now)s)
ON CONFLICT (kind, key) DO UPDATE SET state = 'running', claimed_at = %(now)s, attempts = finance_jobs.attempts + 1,
    error = NULL
WHERE finance_jobs.state = 'failed' AND finance_jobs.next_attempt_at <= %(now)s
   OR finance_jobs.state = 'running' AND finance_jobs.claimed_at < %(stale)s
RETURNING attempts
"""
FINISH_JOB = """
UPDATE finance_jobs SET state = %(state)s, finished_at = %(now)s, error = %(error)s, next_attempt_at = %(retry_at)s
WHERE kind = %(kind)s AND key = %(key)s
"""
JOB_STATE = "SELECT state FROM finance_jobs WHERE kind = %(kind)s AND key = %(key)s"


def claim_job(conn: psycopg.Connection, kind: str, key: str, now: datetime, lease: timedelta) -> int | None:
    """Claim a scheduled job and return which attempt this is; None when it is done, running elsewhere,
    given up on, or failed and not due yet."""
    row = conn.execute(CLAIM_JOB, {"kind": kind, "key": key, "now": now, "stale": now - lease}).fetchone()
    return int(row[0]) if row else None


def finish_job(
    conn: psycopg.Connection,
    kind: str,
    key: str,
    now: datetime,
    *,
    error: str | None = None,
    retry_at: datetime | None = None,
) -> None:
    """Mark a job done, or failed (with when to try again)."""
    conn.execute(
        FINISH_JOB,
        {
            "kind": kind,
            "key": key,
            "now": now,
            "state": "failed" if error else "done",
            "error": error,
            "retry_at": retry_at,
        },
    )


def job_state(conn: psycopg.Connection, kind: str, key: str) -> str | None:
    """running, done, failed, or None when never claimed."""
    row = conn.execute(JOB_STATE, {"kind": kind, "key": key}).fetchone()
    return row[0] if row else None
