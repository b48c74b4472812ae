"""`refund-desk`: run the processes, apply migrations, check configuration, play the demo."""

from __future__ import annotations

import logging
import os
import sys

import click

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

        def load(self):
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


def _db_pool():
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


@events.command("backfill")
@click.option("--since", required=True, type=click.DateTime(), help="UTC, e.g. 2026-11-01 or 2026-11-01T08:00:00")
@click.option("--until", type=click.DateTime(), default=None, help="UTC; default now")
def events_backfill(since, until) -> None:
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
    stored, skipped = backfill(pool, build_client(settings), start_at, end_at)
    pool.close()
    click.echo(f"stored {stored} new event(s); {skipped} were already here")


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


@main.command()
@click.option("--keep", is_flag=True, help="keep serving after the demo (Ctrl-C to stop)")
def demo(keep: bool) -> None:
    """Run the app on the embedded Postgres with local Slack and Stripe stand-ins, and play a session."""
    from demo.run import run

    sys.exit(run(keep=keep))


if __name__ == "__main__":
    main()
