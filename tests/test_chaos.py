"""Chaos: thousands of real-shaped Stripe events, duplicated and shuffled, sent by concurrent senders that
retry like Stripe to the web process under gunicorn, while the database restarts twice and two workers
apply events. Everything is stored once and ends where applying the events in their true order ends."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import psycopg
import requests
from conftest import STRIPE_KEY, WEBHOOK_SECRET, replace_settings
from support import ROOT, running_workers, wait_until

from app import build_deps
from domain.clock import utcnow
from domain.models import refundable, refunded
from handlers.dispatch import process_next
from standins.signing import stripe_signature
from standins.stripe_api import StripeStandIn
from store import db, embedded, events, migrate
from store import payments as store

EVENTS = int(os.environ.get("CHAOS_EVENTS", "5000"))
SENDERS = 8
DUPLICATES = 0.30


def _scenario(stripe_api: StripeStandIn, want: int, rng: random.Random) -> list[dict]:
    """Payments, partial and full refunds, refund failures, until Stripe has emitted `want` events."""
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {STRIPE_KEY}"
    charges: list[tuple[str, int, str]] = []
    while len(stripe_api.events) < want * 0.35:
        currency = rng.choice(["usd", "eur", "jpy", "kwd"])
        amount = rng.randrange(100, 5000) * 10
        failed = rng.random() < 0.12
        p = stripe_api.add_payment(
            amount, currency, status="failed" if failed else "succeeded", email=f"c{len(charges)}@example.com"
        )
        if not failed:
            charges.append((p["charge"]["id"], amount, currency))
    pending: list[str] = []
    while len(stripe_api.events) < want:
        charge, amount, currency = rng.choice(charges)
        left = amount - stripe_api.object(charge)["amount_refunded"]
        if left <= 0:
            continue
        data = {"charge": charge}
        if rng.random() < 0.7 and left > 20:
            data["amount"] = str(rng.randrange(1, left // 10 + 1) * 10)
        r = http.post(f"{stripe_api.url}/v1/refunds", data=data, timeout=5)
        assert r.status_code == 200, r.text
        pending.append(r.json()["id"])
        if len(pending) > 5 or rng.random() < 0.3:
            refund = pending.pop(rng.randrange(len(pending)))
            roll = rng.random()
            if roll < 0.65:
                stripe_api.settle_refund(refund, "succeeded")
            elif roll < 0.9:
                stripe_api.settle_refund(refund, "failed", failure_reason="expired_or_canceled_card")
    http.close()
    return stripe_api.events[:want]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gunicorn(database_url: str, port: int, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SLACK_BOT_TOKEN": "xoxb-chaos",
        "SLACK_SIGNING_SECRET": "chaos",
        "STRIPE_SECRET_KEY": STRIPE_KEY,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "LOG_LEVEL": "ERROR",
        "STRIPE_API_BASE": "http://127.0.0.1:9",
        "SLACK_API_URL": "http://127.0.0.1:9/api/",
    }
    with log.open("wb") as err:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "3",
                "--log-level",
                "error",
                "app:create_app()",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    return proc
            except requests.RequestException:
                pass  # not listening yet
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.2)
    except BaseException:
        proc.terminate()  # never leave a server behind
        proc.wait(10)
        raise


def _send_all(url: str, bodies: list[bytes], senders: int) -> Counter:
    """Post every body, retrying non-2xx and connection errors with backoff, as Stripe does."""
    queue = list(reversed(bodies))
    lock = threading.Lock()
    outcomes: Counter = Counter()

    def sender() -> None:
        http = requests.Session()
        while True:
            with lock:
                if not queue:
                    break
                body = queue.pop()
            delay = 0.05
            while True:
                try:
                    resp = http.post(
                        url,
                        data=body,
                        timeout=10,
                        headers={
                            "Stripe-Signature": stripe_signature(body, WEBHOOK_SECRET),
                            "Content-Type": "application/json",
                        },
                    )
                    status = resp.status_code
                except requests.RequestException:
                    status = 0
                with lock:
                    outcomes[status] += 1
                if 200 <= status < 300:
                    break
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        http.close()

    threads = [threading.Thread(target=sender) for _ in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def _final_state(conn: psycopg.Connection, ids: list[str]) -> dict:
    state = {}
    for payment_id in ids:
        view = store.find_view(conn, payment_id)
        if view is None:
            state[payment_id] = None
            continue
        p = view.payment
        state[payment_id] = {
            "status": p.status,
            "captured": p.amount_captured,
            "charge": p.charge_id,
            "currency": p.currency,
            "refunded": refunded(view),
            "refundable": refundable(view),
            "refunds": sorted((r.id, r.status, r.amount, r.failure_reason) for r in view.refunds),
        }
    return state


def test_chaos(settings, stripe_api: StripeStandIn, db_url: str, tmp_path: Path) -> None:
    rng = random.Random(20261122)
    true_order = _scenario(stripe_api, EVENTS, rng)
    payment_ids = sorted({e["data"]["object"]["id"] for e in true_order if e["type"].startswith("payment_intent.")})

    # The oracle: the same events, once each, applied one by one in their true order.
    oracle = replace_settings(settings, refunds_feed_channel=None)
    oracle_deps = build_deps(oracle)
    for event in true_order:
        with db.connection(oracle_deps.pool) as conn:
            events.record(conn, event, json.dumps(event))
        assert process_next(oracle_deps.pool, oracle, now=utcnow()) == event["id"]
    with db.connection(oracle_deps.pool) as conn:
        expected = _final_state(conn, payment_ids)
    oracle_deps.pool.close()

    # The chaos run, on a private server we can restart.
    server = embedded.server_for(tmp_path / "pg")
    url = server.get_uri()
    migrate.migrate(url)
    chaos = replace_settings(settings, database_url=url, refunds_feed_channel=None)
    port = _free_port()
    web = _gunicorn(url, port, tmp_path / "gunicorn.log")
    with running_workers(chaos, count=2):
        bodies = [json.dumps(e).encode() for e in true_order]
        bodies += rng.sample(bodies, int(len(bodies) * DUPLICATES))
        rng.shuffle(bodies)

        restarts_done = threading.Event()

        def restart_twice() -> None:
            nonlocal server
            for pause in (1.5, 2.0):
                time.sleep(pause)
                server.cleanup()  # stop
                time.sleep(0.8)
                server = embedded.server_for(tmp_path / "pg")
            restarts_done.set()

        restarter = threading.Thread(target=restart_twice)
        restarter.start()
        try:
            outcomes = _send_all(f"http://127.0.0.1:{port}/webhooks/stripe", bodies, SENDERS)
            restarter.join()
            assert restarts_done.is_set()

            def applied() -> bool:
                with psycopg.connect(url) as conn:
                    return (
                        conn.execute(
                            "SELECT count(*) FROM stripe_events WHERE status IN ('pending', 'failed')"
                        ).fetchone()[0]
                        == 0
                    )

            wait_until(applied, timeout=90, what="applying every event", every=0.25)
        finally:
            web.terminate()
            web.wait(15)

    with psycopg.connect(url) as conn:
        stored = dict(conn.execute("SELECT status, count(*) FROM stripe_events GROUP BY status").fetchall())
        stored_ids = {r[0] for r in conn.execute("SELECT id FROM stripe_events")}
        duplicated_audit = conn.execute(
            "SELECT count(*) FROM (SELECT cause FROM audit_log WHERE cause IS NOT NULL"
            " GROUP BY cause HAVING count(*) > 1) d"
        ).fetchone()[0]
        audit_rows = conn.execute("SELECT count(*) FROM audit_log").fetchone()[0]
        actual = _final_state(conn, payment_ids)
    server.cleanup()

    unique = {e["id"] for e in true_order}
    assert stored_ids == unique, "every event stored exactly once (the primary key makes 'once' hold)"
    assert set(stored) <= {"processed", "ignored"} and sum(stored.values()) == len(unique)
    assert outcomes[200] == len(bodies), "every delivery ended in a 2xx"
    assert outcomes.keys() - {200} <= {0, 503}, f"only retries of the outage: {outcomes}"
    assert outcomes[503] + outcomes[0] > 0, "the restarts happened while events were arriving"
    assert duplicated_audit == 0 and audit_rows <= len(unique) * 2
    mismatched = {k: (expected[k], actual[k]) for k in expected if expected[k] != actual[k]}
    example = next(iter(mismatched.items()), None)
    assert not mismatched, f"{len(mismatched)} payments differ from the true order, e.g. {example}"
