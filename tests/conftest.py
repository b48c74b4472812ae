"""Shared fixtures: a real Postgres (embedded), a fresh database per test, Slack and Stripe stand-ins,
and the web app served over real HTTP."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import requests
from support import ROOT
from werkzeug.serving import make_server

from settings import Settings
from standins.signing import stripe_signature
from standins.slack_api import SlackStandIn
from standins.slack_sender import SlackSender
from standins.stripe_api import StripeStandIn
from store import embedded, migrate

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
WEBHOOK_SECRET = "whsec_test_secret_for_the_refund_desk"
STRIPE_KEY = "sk_test_standin"
_counter = itertools.count()


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """The embedded Postgres for the test run, shared by xdist workers, stopped by the last one."""
    data = Path(os.environ.get("REFUND_DESK_TEST_DATA", ROOT / ".data" / "test"))
    url = embedded.start(data)
    with psycopg.connect(url, autocommit=True) as conn:
        # A throwaway server: durability across a power cut buys nothing here, and fsync made each
        # test's CREATE DATABASE … TEMPLATE cost 0.2 s (most of the suite's time). Never in production.
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            conn.execute(f"ALTER SYSTEM SET {setting} = off")
        conn.execute("SELECT pg_reload_conf()")
    return url


@pytest.fixture(scope="session")
def template_db(pg_server_url: str) -> str:
    """A database with every migration applied, cloned for each test; rebuilt when migrations change."""
    digest = hashlib.sha256("".join(m.sql for m in migrate.available()).encode()).hexdigest()[:12]
    name = f"refund_desk_tpl_{digest}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(4242)")
        try:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %(n)s", {"n": name}).fetchone()
            if not exists:
                building = name + "_building"
                conn.execute(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
                conn.execute(f'CREATE DATABASE "{building}"')
                migrate.migrate(with_database(pg_server_url, building))
                conn.execute(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
        finally:
            conn.execute("SELECT pg_advisory_unlock(4242)")
    return name


class DatabaseClones:
    """Clones of the template, made ahead on a background thread while tests run.

    CREATE DATABASE … TEMPLATE costs about 0.1 s whatever is in it; made in the background it
    overlaps with the previous test instead of adding to it.
    """

    def __init__(self, server_url: str, template: str, *, ahead: int = 2):
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        self.prefix = f"t_{worker}_{os.getpid()}"
        self.server_url, self.template = server_url, template
        self.ready: queue.Queue[str | BaseException] = queue.Queue(maxsize=ahead)
        self.used: queue.Queue[str] = queue.Queue()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._fill, name="db-clones", daemon=True)
        self.thread.start()

    def _fill(self) -> None:
        try:
            with psycopg.connect(self.server_url, autocommit=True) as conn:
                while not self.stopping.is_set():
                    self._drop_used(conn)
                    name = f"{self.prefix}_{next(_counter)}"
                    conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
                    while not self.stopping.is_set():
                        try:
                            self.ready.put(name, timeout=0.05)
                            break
                        except queue.Full:
                            self._drop_used(conn)
                    else:
                        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except BaseException as exc:  # noqa: BLE001 - handed to the test that waits, which fails with it
            self.ready.put(exc)

    def _drop_used(self, conn: psycopg.Connection) -> None:
        while True:
            try:
                name = self.used.get_nowait()
            except queue.Empty:
                return
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def give_back(self, name: str) -> None:
        """A test is done with its clone: it is dropped in the background."""
        self.used.put(name)

    def take(self) -> str:
        """The name of a fresh clone (waits for one; raises what stopped the cloning thread)."""
        got = self.ready.get(timeout=60)
        if isinstance(got, BaseException):
            raise got
        return got

    def close(self) -> None:
        """Stop cloning and drop the clones nobody took."""
        self.stopping.set()
        self.thread.join(10)
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            while not self.ready.empty():
                name = self.ready.get_nowait()
                if isinstance(name, str):
                    self.used.put(name)
            self._drop_used(conn)


@pytest.fixture(scope="session")
def clones(pg_server_url: str, template_db: str) -> Iterator[DatabaseClones]:
    """Fresh databases made ahead for this test process."""
    made = DatabaseClones(pg_server_url, template_db)
    yield made
    made.close()


@pytest.fixture
def db_url(pg_server_url: str, clones: DatabaseClones) -> Iterator[str]:
    """A fresh, fully migrated database for one test, dropped afterwards."""
    name = clones.take()
    try:
        yield with_database(pg_server_url, name)
    finally:
        clones.give_back(name)


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    """A connection to the test's database (autocommit off: the test owns transactions)."""
    with psycopg.connect(db_url) as connection:
        yield connection


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    """The Slack Web API stand-in."""
    with SlackStandIn(usergroups={"S0APPROVERS": ["U0MANAGER1", "U0MANAGER2"]}) as standin:
        yield standin


@pytest.fixture
def stripe_api() -> Iterator[StripeStandIn]:
    """The Stripe API stand-in."""
    with StripeStandIn(api_keys=(STRIPE_KEY,)) as standin:
        yield standin


@pytest.fixture
def settings(db_url: str, slack: SlackStandIn, stripe_api: StripeStandIn) -> Settings:
    """Settings pointing at the test database and the stand-ins."""
    return Settings(
        database_url=db_url,
        slack_bot_token="xoxb-standin",
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=slack.api_url,
        stripe_secret_key=STRIPE_KEY,
        stripe_webhook_secrets=(WEBHOOK_SECRET,),
        stripe_api_base=stripe_api.url,
        stripe_timeout=2.0,
        stripe_max_network_retries=1,
        approvals_channel="C0APPROVALS",
        refunds_feed_channel="C0REFUNDFEED",
        disputes_channel="C0DISPUTES",
        alerts_channel="C0ALERTS",
        db_pool_max=4,
    )


class LiveServer:
    """The web app on a real socket, with helpers that send what Slack and Stripe send."""

    def __init__(self, url: str, settings: Settings, slack: SlackStandIn, deps=None):
        self.url = url
        self.settings = settings
        self.slack = slack
        self.deps = deps
        self.sender = SlackSender(url, settings.slack_signing_secret, slack)
        self.http = self.sender.http

    def slash(self, text: str, *, user_id: str = "U0SUPPORT1", key: str | None = None) -> tuple[requests.Response, str]:
        """POST a signed /refunds command; return the response and the response_url key."""
        return self.sender.slash(text, user=user_id, key=key)

    def click(
        self, action_id: str, value: str, *, user: str, key: str | None = None, channel: str = "C0APPROVALS"
    ) -> tuple[requests.Response, str]:
        """A signed button click, shaped like Slack's block_actions."""
        return self.sender.click(action_id, value, user=user, channel=channel, key=key)

    def submit(self, callback_id: str, values: dict[str, dict], *, user: str, private_metadata: str = "") -> dict:
        """A signed modal submission; returns the JSON answer ({} = closed)."""
        return self.sender.submit(callback_id, values, user=user, private_metadata=private_metadata)

    def webhook(
        self,
        event: dict | bytes | str,
        *,
        secret: str | None = None,
        header: str | None = None,
        timestamp: int | None = None,
    ) -> requests.Response:
        """POST an event to /webhooks/stripe, signed like Stripe unless a header is given."""
        body = event if isinstance(event, bytes) else (event if isinstance(event, str) else json.dumps(event)).encode()
        if header is None:
            header = stripe_signature(body, secret or self.settings.stripe_webhook_secrets[0], timestamp=timestamp)
        return self.http.post(
            f"{self.url}/webhooks/stripe",
            data=body,
            timeout=10,
            headers={"Stripe-Signature": header, "Content-Type": "application/json"},
        )

    def drain(self) -> int:
        """Run the worker's event processing until nothing is due; return how many events it took."""
        from domain.clock import utcnow
        from handlers.dispatch import process_next

        n = 0
        while process_next(self.deps.pool, self.settings, now=utcnow()) is not None:
            n += 1
        return n

    def deliver(self) -> int:
        """Deliver every deliverable Slack message now (no pacing); return how many were sent."""
        from domain.clock import utcnow
        from services.slack_delivery import build_client, deliver_next

        client = build_client(self.settings.slack_bot_token, self.settings.slack_api_url)
        n = 0
        while deliver_next(self.deps.pool, client, now=utcnow(), pace_seconds=0):
            n += 1
        return n


@pytest.fixture
def make_server_for(request):
    """Start the web app for given settings on a real socket; stopped at teardown."""
    from app import build_deps, create_app

    started = []

    def start(settings: Settings, slack: SlackStandIn) -> LiveServer:
        deps = build_deps(settings)
        flask_app = create_app(settings, deps=deps)
        server = make_server("127.0.0.1", 0, flask_app, threaded=True)
        # A short poll interval keeps shutdown() fast (the default waits up to 0.5 s per server).
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        thread.start()
        live = LiveServer(f"http://127.0.0.1:{server.server_port}", settings, slack, deps)
        started.append((server, thread, deps, live))
        return live

    yield start
    for server, thread, deps, live in started:
        server.shutdown()
        server.server_close()
        thread.join(5)
        live.http.close()
        deps.pool.close()


@pytest.fixture
def web(make_server_for, settings: Settings, slack: SlackStandIn) -> LiveServer:
    """The web app against the test database and stand-ins."""
    return make_server_for(settings, slack)


def replace_settings(settings: Settings, **changes) -> Settings:
    """A copy of settings with some fields changed."""
    return replace(settings, **changes)
