"""Reconciliation: Stripe's balance transactions of a day (per Stripe account) or of a payout, beside
what our records say; the result stored with its findings, compared with the run it replaces, and
reported to finance.

A run pages Stripe into a temporary table of its own connection (no page is kept in memory after
it is copied), compares in SQL, and streams back only what differs. The run's connection holds an
advisory lock on the day or payout, so two processes never run the same one at once.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

import psycopg
from psycopg_pool import ConnectionPool

from domain.errors import DatabaseUnavailable, DeskError, NotFound
from domain.finance import (
    Finding,
    Item,
    Run,
    RunChanges,
    StoredFinding,
    above,
    classify,
    day_bounds,
    payout_from_stripe,
    payout_total_finding,
    previous_day,
    totals,
    totals_to_json,
    txn_from_stripe,
)
from messages import finance as fm
from messages import keys
from messages import oncall as on
from services import incidents
from services.deps import Context
from settings import Settings
from store import audit, db, outbox
from store import finance as store

log = logging.getLogger(__name__)

# Items whose source is looked up in Stripe (to tell a refund made by the bot from one made
# elsewhere): enough for any real day, bounded for a day where everything went wrong.
SOURCE_LOOKUPS = 25
FINDINGS_BATCH = 500
# A day is over at midnight UTC; late webhooks get this long before the worker reconciles it.
RECONCILE_DELAY = timedelta(hours=1)
RETRY_FAILED = timedelta(minutes=15)
MAX_DAY_ATTEMPTS = 8  # about two hours of retries
JOB_LEASE = timedelta(hours=2)
PAGES_AHEAD = 2  # pages fetched while the one before is copied
SURFACE = {"schedule": "worker", "webhook": "worker", "cli": "cli", "slack": "slack"}


class ReconcileBusy(DeskError):
    """This day or payout is being reconciled elsewhere right now; try again in a minute."""


class ReconcileFailed(DeskError):
    """The reconciliation could not run."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """A finished run: its result, its first findings, (findings, flagged) counts, what it changed."""

    run: Run
    findings: list[StoredFinding]
    counts: tuple[int, int]
    changes: RunChanges
    payouts_seen: tuple[str, ...] = ()

    @property
    def flagged(self) -> bool:
        """Whether a discrepancy is above the tolerance."""
        return self.run.flagged


def reconcile_day(
    ctx: Context,
    day: date,
    account: str | None,
    *,
    via: str,
    by: str | None,
    now: datetime,
    progress: Callable[[int], None] | None = None,
) -> Outcome:
    """Reconcile one UTC day of one Stripe account (None: the platform); replaces the day's result."""
    return _run(ctx, "day", account, day=day, payout_id=None, via=via, by=by, now=now, progress=progress)


def reconcile_payout(
    ctx: Context,
    payout_id: str,
    account: str | None,
    *,
    via: str,
    by: str | None,
    now: datetime,
    progress: Callable[[int], None] | None = None,
) -> Outcome:
    """Sum a payout's balance transactions, compare them with its amount and with our records."""
    return _run(ctx, "payout", account, day=None, payout_id=payout_id, via=via, by=by, now=now, progress=progress)


def _run(
    ctx: Context,
    scope: str,
    account: str | None,
    *,
    day: date | None,
    payout_id: str | None,
    via: str,
    by: str | None,
    now: datetime,
    progress: Callable[[int], None] | None,
) -> Outcome:
    key = f"day:{account or 'platform'}:{day}" if scope == "day" else f"payout:{payout_id}"
    with db.connection(ctx.pool) as conn:
        if not store.try_lock(conn, key):
            raise ReconcileBusy()
        try:
            run_id = store.start_run(
                conn, scope=scope, account=account, day=day, payout_id=payout_id, via=via, by=by, now=now
            )
            try:
                return _compare(conn, ctx, run_id, scope, account, day, payout_id, via, by, now, progress)
            except DatabaseUnavailable:
                raise
            except DeskError as exc:
                # Stripe down, slow or refusing: the day keeps its previous result, the attempt is kept.
                store.fail_run(conn, run_id, exc.message, now)
                raise ReconcileFailed(f"{fm.account_label(account)}: {exc.message}") from exc
        finally:
            if not conn.closed and not conn.broken:
                store.drop_staging(conn)
                store.unlock(conn, key)


def _compare(
    conn: psycopg.Connection,
    ctx: Context,
    run_id: int,
    scope: str,
    account: str | None,
    day: date | None,
    payout_id: str | None,
    via: str,
    by: str | None,
    now: datetime,
    progress: Callable[[int], None] | None,
) -> Outcome:
    settings = ctx.settings
    tolerances = settings.reconciliation_tolerance
    store.stage(conn)
    start = end = None
    if day is not None:
        start, end = day_bounds(day)
        pages = ctx.stripe.balance_transaction_pages(
            account=account, created_from=int(start.timestamp()), created_before=int(end.timestamp())
        )
    else:
        pages = ctx.stripe.balance_transaction_pages(account=account, payout=payout_id)
    count = 0
    for page in _ahead(pages):
        count += store.load(conn, (txn_from_stripe(obj) for obj in page))
        if progress:
            progress(count)
    # Stripe is asked about the few requests whose refund we hold no record of before the
    # comparing transaction opens, so no transaction waits on Stripe for long.
    request_items = _requests_without_refund(conn, ctx, account, start, end) if start and end else []
    payout_json = ctx.stripe.payout(payout_id, account) if payout_id else None

    with conn.transaction():
        rows = store.compare(conn)
        sink = _Findings(conn, run_id, ctx, account, tolerances)
        for item in store.differing(conn):
            sink.add(item)
        extra: dict[tuple[str, str], int] = defaultdict(int)  # our records' side of local-only items
        if start and end:
            for item in [*store.local_refunds_missing(conn, account, start, end), *request_items]:
                sink.add(item)
                extra[(item.currency, item.category)] += item.expected or 0
        if payout_json is not None and payout_id is not None:
            contents = store.payout_contents(conn, payout_id)
            currency = str(payout_json.get("currency") or "usd")
            sink.add_finding(
                payout_total_finding(payout_id, currency, int(payout_json.get("amount") or 0), contents, tolerances)
            )
        sink.flush()
        all_totals = totals([*rows, *((c, cat, 0, amount, 0) for (c, cat), amount in extra.items())])
        flagged = sink.flagged or any(above(t.difference, t.currency, tolerances) for t in all_totals)
        previous = (
            store.current_day_run(conn, day, account)
            if day is not None
            else store.current_payout_run(conn, payout_id or "")
        )
        counts = store.finding_counts(conn, run_id)
        changes = store.finish_run(
            conn,
            run_id,
            status="discrepancies" if counts[0] else "clean",
            flagged=flagged,
            txn_count=count,
            totals=totals_to_json(all_totals),
            previous=previous,
            now=now,
        )
        run = store.get_run(conn, run_id)
        if run is None:  # written just above in this transaction: only a bug gets here
            raise ReconcileFailed(f"run {run_id} vanished while it was being finished")
        findings = store.findings(conn, run_id, limit=fm.ITEMS_IN_THREAD)
        _announce(conn, settings, run, findings, counts, changes)
        audit.record(
            conn,
            actor=by or via,
            surface=SURFACE.get(via, "system"),
            action="reconciliation.run",
            subject=f"recon:{run.label}:{fm.account_label(account)}",
            stripe_ids=[payout_id] if payout_id else [],
            details={
                "run": run_id,
                "status": run.status,
                "flagged": flagged,
                "findings": counts[0],
                "flagged_findings": counts[1],
                "balance_transactions": count,
            },
            at=now,
        )
        seen = tuple(store.staged_payouts(conn)) if scope == "day" else ()
    return Outcome(run, findings, counts, changes, seen)


def _ahead(pages: Iterator[list[dict]], depth: int = PAGES_AHEAD) -> Iterator[list[dict]]:
    """The pages, fetched by a thread up to `depth` ahead: copying one page overlaps waiting for the next.

    Memory stays bounded (depth + 1 pages); an error while fetching is raised here, in order.
    """
    buffer: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple[str, object]) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False  # the consumer is gone

    def fetch() -> None:
        try:
            for page in pages:
                if not put(("page", page)):
                    return
            put(("end", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            put(("error", exc))

    fetcher = threading.Thread(target=fetch, name="recon-pages", daemon=True)
    fetcher.start()
    try:
        while True:
            kind, value = buffer.get()
            if kind == "end":
                return
            if kind == "error":
                raise value  # type: ignore[misc]
            yield value  # type: ignore[misc]
    finally:
        stop.set()  # the consumer stopped (done, or failed): the fetcher stops at its next page
        fetcher.join(timeout=5)


class _Findings:
    """Classifies items and stores findings in batches; looks up a few sources in Stripe."""

    def __init__(
        self, conn: psycopg.Connection, run_id: int, ctx: Context, account: str | None, tolerances: Mapping[str, int]
    ) -> None:
        self.conn, self.run_id, self.ctx, self.account, self.tolerances = conn, run_id, ctx, account, tolerances
        self.batch: list[Finding] = []
        self.flagged = False
        self.lookups = 0

    def add(self, item: Item) -> None:
        if item.expected is None and item.txn_id and item.category in ("refunds", "refund_reversals"):
            item = replace(item, made_by_bot=self._made_by_bot(item.txn_id))
        self.add_finding(classify(item, self.tolerances))

    def add_finding(self, finding: Finding | None) -> None:
        if finding is None:
            return
        self.flagged = self.flagged or finding.flagged
        self.batch.append(finding)
        if len(self.batch) >= FINDINGS_BATCH:
            self.flush()

    def flush(self) -> None:
        store.add_findings(self.conn, self.run_id, self.batch)
        self.batch = []

    def _made_by_bot(self, txn_id: str) -> bool | None:
        """Whether the refund behind a balance transaction names one of our requests (None: not looked at)."""
        if self.lookups >= SOURCE_LOOKUPS:
            return None
        self.lookups += 1
        try:
            txn = self.ctx.stripe.balance_transaction(txn_id, self.account)
        except DeskError as exc:
            log.warning("could not look at the source of %s: %s", txn_id, exc.message)
            return None
        source = txn.get("source")
        if not isinstance(source, dict):
            return None
        return bool((source.get("metadata") or {}).get("refund_desk_request"))


def _requests_without_refund(
    conn: psycopg.Connection, ctx: Context, account: str | None, start: datetime, end: datetime
) -> list[Item]:
    """Requests that finished as refunded that day, naming a refund Stripe does not have."""
    items = []
    for q in store.requests_without_refund(conn, account, start, end):
        try:
            ctx.stripe.refund(q.stripe_refund_id, account)
            continue  # Stripe has it: its own day's run shows it if we never recorded it
        except NotFound:
            pass
        items.append(
            Item(
                category="refunds",
                currency=q.currency,
                actual=0,
                expected=-q.amount,
                source=q.stripe_refund_id,
                local_currency=q.currency,
                local_amount=-q.amount,
                local_status="succeeded",
                related=(q.payment_id,),
                request_id=q.id,
                local_kind="request_refund_missing",
            )
        )
    return items


def _announce(
    conn: psycopg.Connection,
    settings: Settings,
    run: Run,
    findings: list[StoredFinding],
    counts: tuple[int, int],
    changes: RunChanges,
) -> None:
    """The report in FINANCE_CHANNEL: posted once per day or payout, updated by re-runs that say what changed."""
    channel = settings.finance_target
    if not channel:
        return
    key = keys.recon_day(run.account, str(run.day)) if run.scope == "day" else keys.recon_payout(run.payout_id or "")
    message = fm.run_message(run, counts)
    livemode = settings.stripe_livemode
    if not outbox.exists(conn, key):
        outbox.enqueue(conn, channel=channel, payload=message, message_key=key)
        for reply in fm.findings_replies(run, findings, counts[0], livemode=livemode) if counts[0] else ():
            outbox.enqueue(conn, channel=channel, payload=reply, parent_key=key)
        return
    outbox.enqueue(conn, channel=channel, method="chat.update", payload=message, parent_key=key)
    note = fm.changes_note(changes, started_via=run.started_via, started_by=run.started_by)
    outbox.enqueue(conn, channel=channel, payload={"text": note}, parent_key=key)
    new = set(changes.new)
    fresh = [f for f in findings if (f.kind, f.subject, f.currency) in new]
    for reply in fm.findings_replies(run, fresh, changes.new_count, livemode=livemode) if changes.new_count else ():
        outbox.enqueue(conn, channel=channel, payload=reply, parent_key=key)


# --- what the worker does by itself ---------------------------------------------------------------------


def reconcile_due(ctx: Context, now: datetime) -> list[Outcome]:
    """Yesterday (UTC), once it has been over for RECONCILE_DELAY: every account, once, however many workers."""
    day = previous_day(now)
    if now < day_bounds(day)[1] + RECONCILE_DELAY:
        return []
    job = str(day)
    with db.connection(ctx.pool) as conn:
        attempt = store.claim_job(conn, "reconcile_day", job, now, JOB_LEASE)
        if attempt is None:
            return []
        accounts: list[str | None] = [None, *store.known_accounts(conn)]
    done: list[Outcome] = []
    problems: list[str] = []
    busy = False
    for account in accounts:
        with db.connection(ctx.pool) as conn:
            if store.current_day_run(conn, day, account) is not None:
                continue  # already reconciled (a CLI run, or this job's earlier attempt)
        try:
            outcome = reconcile_day(ctx, day, account, via="schedule", by=None, now=now)
        except ReconcileBusy:
            busy = True  # someone is running it right now (the CLI): the next round finds its result
            continue
        except ReconcileFailed as exc:
            problems.append(exc.message)
            log.warning("reconciliation of %s (%s) did not run: %s", day, fm.account_label(account), exc.message)
            continue
        done.append(outcome)
        _payouts_found(ctx, outcome.payouts_seen, account, now)
    with db.connection(ctx.pool) as conn:
        if problems:
            # An account Stripe no longer lets us read must not be retried all day, every day.
            gave_up = attempt >= MAX_DAY_ATTEMPTS
            retry_at = None if gave_up else now + RETRY_FAILED
            store.finish_job(conn, "reconcile_day", job, now, error="; ".join(problems)[:1000], retry_at=retry_at)
            if attempt == 1 or gave_up:  # said once, and once more when the worker stops trying
                _tell_failure(conn, ctx.settings, str(day), problems, gave_up=gave_up)
        elif busy:
            store.finish_job(conn, "reconcile_day", job, now, error="running elsewhere", retry_at=now + RETRY_FAILED)
        else:
            store.finish_job(conn, "reconcile_day", job, now)
    # A run that could not run is an on-call incident too: alerted, paged, resolved by the next good run.
    with db.transaction(ctx.pool) as conn:
        if problems:
            text = on.reconciliation_failed_text(job, problems)
            incidents.problem(conn, ctx.settings, "reconciliation", text, now=now)
        else:
            incidents.cleared(conn, ctx.settings, "reconciliation", on.RECONCILIATION_RAN, now=now)
    return done


def _tell_failure(
    conn: psycopg.Connection, settings: Settings, day: str, problems: list[str], *, gave_up: bool
) -> None:
    channel = settings.finance_target
    if channel:
        then = (
            f" The worker gave up after {MAX_DAY_ATTEMPTS} attempts: run `refund-desk reconcile --date {day}`."
            if gave_up
            else " The worker tries again every 15 minutes."
        )
        text = fm.failed_run_text(day, None, "; ".join(problems)) + then
        outbox.enqueue(conn, channel=channel, payload={"text": text})


def _payouts_found(ctx: Context, payout_ids: Iterable[str], account: str | None, now: datetime) -> None:
    """Payouts a day's run found: reconcile each paid one not reconciled yet (recording it if we never did)."""
    for payout_id in payout_ids:
        with db.connection(ctx.pool) as conn:
            if store.current_payout_run(conn, payout_id) is not None:
                continue
            known = store.get_payout(conn, payout_id)
        try:
            if known is None:
                obj = ctx.stripe.payout(payout_id, account)
                with db.transaction(ctx.pool) as conn:
                    store.save_payout(conn, payout_from_stripe(obj, account=account, observed_at=now))
                if obj.get("status") != "paid":
                    continue
            elif known.status != "paid":
                continue
            reconcile_payout(ctx, payout_id, account, via="schedule", by=None, now=now)
            with db.connection(ctx.pool) as conn:
                store.payout_due(conn, payout_id, None)
        except (ReconcileBusy, DeskError) as exc:
            log.warning("payout %s found on a day's run was not reconciled: %s", payout_id, exc.message)


def reconcile_due_payouts(ctx: Context, now: datetime, *, limit: int = 5) -> list[Outcome]:
    """Payouts paid since (payout.paid): each reconciled once; a failure is tried again after RETRY_FAILED."""
    done = []
    for _ in range(limit):
        with db.connection(ctx.pool) as conn:
            payout = store.claim_due_payout(conn, now, RETRY_FAILED)
        if payout is None:
            break
        try:
            done.append(reconcile_payout(ctx, payout.id, payout.account, via="webhook", by=None, now=now))
        except (ReconcileBusy, ReconcileFailed) as exc:
            log.warning("payout %s not reconciled yet: %s", payout.id, exc.message)
            continue
        with db.connection(ctx.pool) as conn:
            store.payout_due(conn, payout.id, None)
    return done


# --- reading results ------------------------------------------------------------------------------------


def day_result(
    pool: ConnectionPool, day: date, *, limit: int = 20
) -> list[tuple[Run, list[StoredFinding], tuple[int, int]]]:
    """The current result of a day for every account reconciled, with each run's first findings."""
    with db.connection(pool) as conn:
        return [
            (run, store.findings(conn, run.id, limit=limit), store.finding_counts(conn, run.id))
            for run in store.day_runs(conn, day)
        ]


def each_finding(pool: ConnectionPool, run_id: int) -> Iterator[StoredFinding]:
    """Every finding of a run, streamed (the CLI's JSON lists them all, however many)."""
    with db.connection(pool) as conn, conn.transaction():
        yield from store.iter_findings(conn, run_id)


def accounts(pool: ConnectionPool) -> list[str | None]:
    """The platform and every connected account our records mention."""
    with db.connection(pool) as conn:
        return [None, *store.known_accounts(conn)]
