"""`refund-desk`: run the processes, apply migrations, check configuration, play the demo."""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from datetime import datetime

    from flask import Flask
    from psycopg_pool import ConnectionPool

from settings import VARIABLES, ConfigError, Settings, load_settings

log = logging.getLogger("refund_desk")


def _settings(require: str) -> Settings:
    try:
        return load_settings(require=require)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        click.echo("See README.md, 'Settings', or run `refund-desk config`.", err=True)
        sys.exit(2)


def _database_url(settings: Settings) -> str:
    from store import db

    url = db.database_url(settings)
    # Child processes (gunicorn workers) reuse the server this process started.
    os.environ["DATABASE_URL"] = url
    return url


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Refund desk: Slack ChatOps for payments operations on Stripe."""


@main.command()
def migrate() -> None:
    """Apply database migrations (the Procfile's release step)."""
    from app import configure_logging
    from store import migrate as migrations

    settings = _settings("db")
    configure_logging(settings)
    applied = migrations.migrate(_database_url(settings))
    click.echo(f"applied: {', '.join(applied)}" if applied else "schema is current")


@main.command()
@click.option("--workers", default=None, type=int, help="gunicorn workers (default 2 × cores)")
def web(workers: int | None) -> None:
    """Serve Slack, Stripe webhooks and health checks (HTTP mode, or Socket Mode with SLACK_APP_TOKEN)."""
    from app import configure_logging, create_app
    from store import migrate as migrations

    settings = _settings("web")
    configure_logging(settings)
    url = _database_url(settings)
    if not settings.database_url:
        migrations.migrate(url)  # embedded default: one command brings everything up
    if settings.socket_mode:
        _socket_mode(settings)
        return
    from gunicorn.app.base import BaseApplication

    class Gunicorn(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"0.0.0.0:{settings.port}")
            self.cfg.set("workers", workers or 2 * (os.cpu_count() or 1))
            self.cfg.set("accesslog", "-")

        def load(self) -> Flask:
            return create_app(load_settings(require="web"))

    Gunicorn().run()


def _socket_mode(settings: Settings) -> None:
    from slack_bolt.adapter.socket_mode import SocketModeHandler
    from werkzeug.serving import make_server

    import bot
    from app import build_deps, create_app

    deps = build_deps(settings)
    flask_app = create_app(settings, deps=deps)
    # Webhooks and health checks still need HTTP; Slack arrives over the socket.
    server = make_server("0.0.0.0", settings.port, flask_app, threaded=True)  # noqa: S104
    import threading

    threading.Thread(target=server.serve_forever, daemon=True).start()
    click.echo(f"Socket Mode; HTTP for webhooks and health on port {settings.port}")
    SocketModeHandler(bot.build_app(deps, socket_mode=True), settings.slack_app_token).start()


@main.command()
def worker() -> None:
    """Apply stored Stripe events and deliver queued Slack messages until stopped (SIGTERM/Ctrl-C)."""
    import signal
    import threading

    from app import build_deps, configure_logging
    from store import migrate as migrations
    from worker.main import check_slack_token, start

    settings = _settings("worker")
    configure_logging(settings)
    url = _database_url(settings)
    if not settings.database_url:
        migrations.migrate(url)  # embedded default: whichever process starts first prepares the schema
    deps = build_deps(settings, database_url=url)
    check_slack_token(deps)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threads = start(deps, stop)
    log.info("worker running")
    try:
        while not stop.is_set():
            stop.wait(1.0)
    except KeyboardInterrupt:
        stop.set()
    for thread in threads:
        thread.join(15)
    deps.pool.close()


@main.group()
def events() -> None:
    """Stripe events: list failures, replay them, backfill from Stripe's Events API."""


def _db_pool() -> ConnectionPool:
    from app import configure_logging
    from store import db

    settings = _settings("db")
    configure_logging(settings)
    return settings, db.open_pool(_database_url(settings), max_size=2)


@events.command("list")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    default=("failed", "dead"),
    show_default=True,
    type=click.Choice(["pending", "failed", "dead", "ignored", "processed"]),
)
@click.option("--limit", default=100, show_default=True)
def events_list(statuses: tuple[str, ...], limit: int) -> None:
    """Events that failed or were dead-lettered, with their last error."""
    from store import db
    from store import events as store_events

    _, pool = _db_pool()
    with db.connection(pool) as conn:
        counts = store_events.counts(conn)
        rows = store_events.listing(conn, list(statuses), limit)
    pool.close()
    click.echo("events by status: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"))
    for r in rows:
        due = r.next_attempt_at.strftime("%Y-%m-%d %H:%M:%S") if r.next_attempt_at else "-"
        click.echo(f"{r.id}  {r.type:32} {r.status:8} attempts {r.attempts:<3} next {due}  {r.last_error or ''}")


@events.command("replay")
@click.argument("event_id", required=False)
@click.option("--all", "replay_all", is_flag=True, help="every failed and dead event")
def events_replay(event_id: str | None, replay_all: bool) -> None:
    """Queue one event (by id) or all failed and dead events for processing again."""
    from store import audit, db
    from store import events as store_events

    if bool(event_id) == replay_all:
        raise click.UsageError("name one event id, or pass --all")
    _, pool = _db_pool()
    with db.transaction(pool) as conn:
        ids = store_events.replay(conn, event_id, ["failed", "dead"])
        for replayed in ids:
            audit.record(
                conn,
                actor=os.environ.get("USER", "cli"),
                surface="cli",
                action="event.replayed",
                subject=replayed,
                stripe_ids=[replayed],
            )
    pool.close()
    if event_id and not ids:
        raise click.ClickException(f"{event_id} is not a stored event (or it is still pending)")
    click.echo(f"queued {len(ids)} event(s) for the worker")


@events.command("purge")
@click.argument("event_ids", nargs=-1)
@click.option("--all-dead", "every_dead", is_flag=True, help="every dead-lettered event")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
def events_purge(event_ids: tuple[str, ...], every_dead: bool, yes: bool) -> None:
    """Delete dead-lettered events for good (named ones, or --all-dead); each deletion is audited.

    Retention never deletes dead-lettered events: they wait here until replayed or purged.
    """
    from store import audit, db
    from store import events as store_events

    if bool(event_ids) == every_dead:
        raise click.UsageError("name dead-lettered event ids, or pass --all-dead")
    if not yes:
        what = "every dead-lettered event" if every_dead else f"{len(event_ids)} dead-lettered event(s)"
        click.confirm(f"Delete {what} for good?", abort=True)
    _, pool = _db_pool()
    with db.transaction(pool) as conn:
        ids = store_events.purge(conn, list(event_ids), every_dead=every_dead)
        for purged in ids:
            audit.record(
                conn,
                actor=os.environ.get("USER", "cli"),
                surface="cli",
                action="event.purged",
                subject=purged,
                stripe_ids=[purged],
            )
    pool.close()
    missing = sorted(set(event_ids) - set(ids))
    click.echo(f"deleted {len(ids)} dead-lettered event(s)")
    if missing:
        raise click.ClickException(f"not dead-lettered (or not stored), so kept: {', '.join(missing)}")


@events.command("backfill")
@click.option("--since", required=True, type=click.DateTime(), help="UTC, e.g. 2026-11-01 or 2026-11-01T08:00:00")
@click.option("--until", type=click.DateTime(), default=None, help="UTC; default now")
def events_backfill(since: datetime, until: datetime | None) -> None:
    """Fetch events from Stripe (it keeps 30 days) and store those we do not have; the worker applies them."""
    from datetime import UTC, timedelta

    from domain.clock import utcnow
    from handlers.backfill import backfill
    from services.stripe_gateway import build_client

    settings, pool = _db_pool()
    if not settings.stripe_secret_key:
        raise click.UsageError("STRIPE_SECRET_KEY is not set")
    start_at = since.replace(tzinfo=UTC)
    end_at = (until or utcnow()).replace(tzinfo=UTC)
    if start_at < utcnow() - timedelta(days=30):
        raise click.UsageError("Stripe keeps events for 30 days: --since must be within the last 30 days")
    from domain.errors import DeskError
    from services import connect
    from services.stripe_gateway import StripeGateway

    client = build_client(settings)
    # The platform's events, then each connected account's (Stripe-Account), the ones Stripe lists included.
    connect.sync_accounts(pool, StripeGateway(client))
    accounts = tuple(connect.known_accounts(pool, 1000))
    try:
        stored, skipped = backfill(pool, client, start_at, end_at, accounts=accounts)
    except DeskError as exc:
        pool.close()
        raise click.ClickException(exc.message) from exc
    pool.close()
    scope = f" (the platform and {len(accounts)} connected account(s))" if accounts else ""
    click.echo(f"stored {stored} new event(s); {skipped} were already here{scope}")


@main.command()
def doctor() -> None:
    """Check, changing nothing, what the Slack token and the Stripe key may do; exit 1 when something is missing."""
    from pathlib import Path

    from domain.permissions import SLACK_SCOPES, manifest_bot_scopes
    from messages.oncall import doctor_report
    from services import doctor as checks
    from services.slack_delivery import build_client as slack_client
    from services.stripe_gateway import StripeGateway
    from services.stripe_gateway import build_client as stripe_client

    settings = _settings("worker")
    # The report says what Stripe refused; the gateway's own error lines would only repeat it.
    logging.getLogger("services.stripe_gateway").setLevel(logging.CRITICAL)
    manifest = Path(__file__).resolve().with_name("manifest.yml")
    wanted = manifest_bot_scopes(manifest.read_text()) if manifest.exists() else tuple(SLACK_SCOPES)
    found = checks.check_slack(slack_client(settings.slack_bot_token, settings.slack_api_url), settings, wanted)
    # No on-call callback: asking what the key may do is not an incident.
    found += checks.check_stripe(StripeGateway(stripe_client(settings), lookup_retries=0))
    click.echo(doctor_report(found))
    sys.exit(1 if any(c.failed for c in found) else 0)


@main.command()
def config() -> None:
    """Check the configuration and list every setting (values of secrets are never shown)."""
    try:
        load_settings(require="web")
        click.echo("configuration OK for the web process")
    except ConfigError as exc:
        click.echo(str(exc))
    click.echo("")
    for name, meaning in VARIABLES.items():
        state = "set" if os.environ.get(name) else "unset"
        click.echo(f"{name:28} {state:6} {meaning}")


@main.group("api-keys")
def api_keys() -> None:
    """Keys for other systems to use /api/v1: create, list, revoke."""


@api_keys.command("create")
@click.option("--name", required=True, help="who uses it (lowercase letters, digits, - _ .); the requester's name")
@click.option("--scopes", default="read", show_default=True, help="read, request, or read,request")
def api_keys_create(name: str, scopes: str) -> None:
    """Make a key; it is printed once, on the last line, and only its hash is kept."""
    from domain.clock import utcnow
    from domain.errors import DeskError
    from services import api_keys as keys

    _, pool = _db_pool()
    try:
        made, key = keys.create(
            pool, name=name, scopes=[s.strip() for s in scopes.split(",") if s.strip()], actor=_actor(), now=utcnow()
        )
    except DeskError as exc:
        raise click.ClickException(exc.message) from exc
    finally:
        pool.close()
    click.echo(f"created API key {made.name} ({made.prefix}…) with scopes {','.join(made.scopes)}")
    click.echo("Store it now: it cannot be shown again.")
    click.echo(key)


@api_keys.command("list")
def api_keys_list() -> None:
    """Every key: name, prefix, scopes, when made and by whom, last used, revoked."""
    from services import api_keys as keys

    _, pool = _db_pool()
    rows = keys.listing(pool)
    pool.close()
    if not rows:
        click.echo("no API keys")
    for k in rows:
        used = k.last_used_at.strftime("%Y-%m-%d %H:%M") if k.last_used_at else "never"
        state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "live"
        click.echo(
            f"{k.name:24} {k.prefix}…  {','.join(k.scopes):13} made {k.created_at:%Y-%m-%d} by {k.created_by}"
            f"  last used {used}  {state}"
        )


@api_keys.command("revoke")
@click.argument("name")
def api_keys_revoke(name: str) -> None:
    """Revoke the live key with this name; it is refused from the next request on."""
    from domain.clock import utcnow
    from services import api_keys as keys

    _, pool = _db_pool()
    revoked = keys.revoke(pool, name, actor=_actor(), now=utcnow())
    pool.close()
    if revoked is None:
        raise click.ClickException(f"no live API key is named {name!r}")
    click.echo(f"revoked API key {name} ({revoked.prefix}…)")


def _actor() -> str:
    return os.environ.get("USER") or "cli"


# --- finance (issue #10): reconciliation, the monthly export, the audit chain ---------------------------

FINDING_FIELDS = (
    "kind",
    "subject",
    "currency",
    "expected",
    "actual",
    "difference",
    "flagged",
    "cause",
    "stripe_ids",
    "details",
)


@main.command("reconcile")
@click.option("--date", "day_text", default=None, help="the UTC day, YYYY-MM-DD")
@click.option("--payout", "payout_id", default=None, help="one payout (po_…) instead of a day")
@click.option("--account", default=None, help="one connected account (acct_…); default: the platform and every one")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def reconcile_cmd(day_text: str | None, payout_id: str | None, account: str | None, fmt: str) -> None:
    """Reconcile a day (or a payout) with Stripe, replacing its result: exit 0 clean, 1 discrepancies above the
    tolerance, 2 could not run. Progress goes to stderr."""
    import json
    import time

    from domain.clock import utcnow
    from domain.errors import DeskError
    from domain.finance import parse_day
    from messages import finance as fm
    from services import reconciliation
    from services.deps import Context
    from services.stripe_gateway import StripeGateway, build_client

    if bool(day_text) == bool(payout_id):
        raise click.UsageError("give --date YYYY-MM-DD, or --payout po_…")
    try:
        day = parse_day(day_text) if day_text else None
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    settings = _settings("db")
    if not settings.stripe_secret_key:
        raise click.UsageError("STRIPE_SECRET_KEY is not set")
    settings, pool = _db_pool()  # opened once nothing can refuse before the finally that closes it
    ctx = Context(pool=pool, stripe=StripeGateway(build_client(settings)), settings=settings)
    told = [0.0]

    def progress(n: int) -> None:
        if time.monotonic() - told[0] >= 2:  # a line every 2 s, not one per page
            told[0] = time.monotonic()
            click.echo(f"  paged {n:,} balance transactions…", err=True)

    outcomes, problems = [], []
    try:
        targets = [account] if account or payout_id else reconciliation.accounts(pool)
        for target in targets:
            label = f"{day or payout_id} · {fm.account_label(target)}"
            click.echo(f"reconciling {label}", err=True)
            try:
                if day is not None:
                    outcome = reconciliation.reconcile_day(
                        ctx, day, target, via="cli", by=_actor(), now=utcnow(), progress=progress
                    )
                else:
                    outcome = reconciliation.reconcile_payout(
                        ctx, payout_id or "", target, via="cli", by=_actor(), now=utcnow(), progress=progress
                    )
            except DeskError as exc:
                problems.append(f"{label}: {exc.message}")
                click.echo(f"  could not run: {exc.message}", err=True)
                continue
            outcomes.append(outcome)
            if fmt == "text":
                click.echo(fm.run_text(outcome.run, outcome.findings, outcome.counts))
        if fmt == "json":

            def out(text: str) -> None:  # streamed: a day may have many findings
                click.echo(text, nl=False)

            out('{"runs": [')
            for i, o in enumerate(outcomes):
                head = {
                    "run": o.run.id,
                    "scope": o.run.scope,
                    "day": str(o.run.day) if o.run.day else None,
                    "payout": o.run.payout_id,
                    "account": o.run.account,
                    "status": o.run.status,
                    "flagged": o.run.flagged,
                    "balance_transactions": o.run.txn_count,
                    "totals": o.run.totals,
                    "changes": o.changes.to_json(),
                }
                out(("," if i else "") + json.dumps(head)[:-1] + ', "findings": [')
                for j, f in enumerate(reconciliation.each_finding(pool, o.run.id)):
                    item = {k: getattr(f, k) for k in FINDING_FIELDS}
                    out(("," if j else "") + json.dumps(item))
                out("]}")
            out("], " + json.dumps({"problems": problems})[1:] + "\n")
    except DeskError as exc:
        problems.append(exc.message)
        click.echo(f"could not run: {exc.message}", err=True)
    finally:
        pool.close()
    if problems:
        sys.exit(2)
    sys.exit(1 if any(o.flagged for o in outcomes) else 0)


@main.command("export")
@click.option("--month", required=True, help="YYYY-MM (UTC calendar month)")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default=None, help="file to write; default stdout")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True)
def export_cmd(month: str, out_path: str | None, fmt: str) -> None:
    """The month's refunds, disputes and audit records (CSV or JSON lines), ending with the audit chain's head."""
    import contextlib
    from pathlib import Path

    from domain.clock import utcnow
    from domain.finance import parse_month
    from services import exports
    from services.slack_delivery import build_client as slack_client
    from store import audit, db

    try:
        year, number = parse_month(month)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    settings, pool = _db_pool()
    names = None
    if settings.slack_bot_token:  # people's names from Slack when it can be asked; their ids always
        names = exports.slack_names(slack_client(settings.slack_bot_token, settings.slack_api_url))
    now = utcnow()
    try:
        if out_path:
            with open(out_path, "wb") as out:
                written = exports.write(pool, year, number, out, fmt=fmt, now=now, names=names)
        else:
            written = exports.write(pool, year, number, sys.stdout.buffer, fmt=fmt, now=now, names=names)
        with db.connection(pool) as conn:
            audit.record(
                conn,
                actor=_actor(),
                surface="cli",
                action="export.written",
                subject=f"export:{month}",
                details={"rows": written.rows, "chain_seq": written.head_seq, "chain_head": written.head_hash},
                at=now,
            )
    except BaseException:
        if out_path:
            with contextlib.suppress(OSError):
                Path(out_path).unlink()  # no half-written file left behind
        raise
    finally:
        pool.close()
    where = out_path or "stdout"
    click.echo(f"wrote {written.rows:,} rows of {month} to {where}", err=True)
    head = written.head
    click.echo(
        f"audit chain head: position {head[0]:,}, sha256 {head[1]}" if head else "audit chain head: (empty)", err=True
    )


@main.group("audit")
def audit_group() -> None:
    """The audit log's hash chain: verify it (for an auditor), seal what waits."""


@audit_group.command("verify")
@click.option("--since", type=click.DateTime(), default=None, help="UTC; check the links sealed since then")
@click.option("--anchor", default=None, help="a head hash kept outside the database (printed by each export)")
def audit_verify(since: datetime | None, anchor: str | None) -> None:
    """Walk the hash chain and report the first record that does not match; exit 1 on any break."""
    from datetime import UTC

    from services import audit_trail

    try:
        anchor_bytes = bytes.fromhex(anchor) if anchor else None
    except ValueError as exc:
        raise click.UsageError("--anchor is the hex sha256 an export printed") from exc
    _, pool = _db_pool()
    try:
        verdict = audit_trail.verify(
            pool,
            since=since.replace(tzinfo=UTC) if since else None,
            anchor=anchor_bytes,
            progress=lambda n: click.echo(f"  {n:,} links checked…", err=True),
        )
    finally:
        pool.close()
    click.echo(f"checked {verdict.checked:,} sealed record(s) from position {verdict.first_seq:,}")
    if verdict.queued:
        click.echo(f"{verdict.queued:,} record(s) wait to be sealed (the worker seals every few seconds)")
    if verdict.problem:
        click.echo(f"BROKEN: {verdict.problem.text}")
    if verdict.anchor_problem:
        click.echo(f"BROKEN: {verdict.anchor_problem}")
    if verdict.head_hash is not None:
        click.echo(f"head: position {verdict.head_seq:,}, sha256 {verdict.head_hash.hex()}")
    if not verdict.ok:
        sys.exit(1)
    click.echo("OK: every checked record matches its seal")


@audit_group.command("seal")
def audit_seal() -> None:
    """Seal every record waiting now (the worker does this every few seconds)."""
    from domain.clock import utcnow
    from services import audit_trail

    _, pool = _db_pool()
    try:
        sealed = audit_trail.seal(pool, now=utcnow(), wait=True)
    finally:
        pool.close()
    click.echo(f"sealed {sealed:,} record(s)")


@main.command()
@click.option("--keep", is_flag=True, help="keep serving after the demo (Ctrl-C to stop)")
def demo(keep: bool) -> None:
    """Run the app on the embedded Postgres with local Slack and Stripe stand-ins, and play a session."""
    from demo.run import run

    sys.exit(run(keep=keep))


if __name__ == "__main__":
    main()
