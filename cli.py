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
    SocketModeHandler(bot.build_app(deps), settings.slack_app_token).start()


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
