"""Lookup benchmark: the `web` process under gunicorn, answering signed `/refunds` store hits over HTTP.

    python -m bench.lookup_bench [--payments 1000000] [--clients 32] [--seconds 15] [--workers 4]

Seeds (or reuses) a store of payments, refunds and disputes in the embedded Postgres under
.data/bench, then measures, one after the other with the same client settings, a bare Bolt app
that only acks (bench/bare_bolt.py) and our app (`app:create_app()`), both under gunicorn with
sync workers. Every request is a freshly signed slash command for a seeded pi_/ch_/re_/dp_ id.
Prints requests/s and ack latency percentiles for both, and whether the issue's goal is met.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import random
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from bench import common
from standins.signing import slack_headers, slash_command_body
from store import embedded, migrate

WORK = common.DATA / "lookup"  # this benchmark's wrk scripts, signed bodies and gunicorn logs
DB_NAME = "refund_desk_bench"
SIGNING_SECRET = "bench-signing-secret-0123456789abcdef"
PATH = "/slack/events"
GOAL_RPS = 1500
GOAL_P99_MS = 50.0
GOAL_CLIENTS = 32
MAX_SECONDS = 120  # keeps the whole run bounded, and every pre-signed body inside Slack's 5-minute window
SEED_VERSION = 2  # bump when the seed SQL changes, so stored seeds are rebuilt

# --------------------------------------------------------------------------------------------
# The store: 1,000,000 payments and about as many refunds, generated in SQL.
# Payment i: every 20th is a charge without a payment intent (id ch_…), every 25th failed (nothing
# captured or refunded); the others succeeded with i % 3 refunds (0–2) of a quarter each, so
# amount_refunded <= amount_captured <= amount. Every 97th succeeded payment has a dispute;
# one in 1000 has a refund request through the bot (so the lookup's requests subquery has rows).
# Amounts are multiples of 10 (Stripe wants the last KWD digit 0). `%%` is psycopg's escaped `%`.
# --------------------------------------------------------------------------------------------
_SERIES = """
    SELECT i,
           'pi_B' || lpad(i::text, 12, '0') AS pi,
           'ch_B' || lpad(i::text, 12, '0') AS ch,
           i %% 20 = 0 AS charge_only,
           i %% 25 <> 0 AS ok,
           i %% 3 AS nref,
           (ARRAY['usd', 'eur', 'jpy', 'kwd'])[i %% 4 + 1] AS currency,
           1000 + (i * 7919 %% 25000) * 10 AS amount,
           timestamptz '2024-01-01 00:00:00+00' + i * interval '30 seconds' AS created
      FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS i
"""

SEED_PAYMENTS = f"""
INSERT INTO payments (id, payment_intent_id, charge_id, account, livemode, amount, amount_captured,
                      amount_refunded, currency, status, charge_status, disputed, customer_id, customer_email,
                      card_brand, card_last4, description, failure_code, failure_message,
                      stripe_created, observed_at, charge_observed_at)
SELECT CASE WHEN charge_only THEN ch ELSE pi END,
       CASE WHEN charge_only THEN NULL ELSE pi END,
       ch, NULL, false, amount,
       CASE WHEN ok THEN amount ELSE 0 END,
       -- the failed second refund (i %% 11 = 0) holds nothing back
       CASE WHEN ok THEN (nref - (nref = 2 AND i %% 11 = 0)::int) * (amount / 40 * 10) ELSE 0 END,
       currency,
       CASE WHEN ok THEN 'succeeded' WHEN charge_only THEN 'failed' ELSE 'requires_payment_method' END,
       CASE WHEN ok THEN 'succeeded' ELSE 'failed' END,
       ok AND i %% 97 = 0,
       'cus_B' || lpad((i %% 400000)::text, 10, '0'),
       'customer' || (i %% 400000) || '@example.com',
       (ARRAY['visa', 'mastercard', 'amex', 'jcb'])[i %% 4 + 1],
       lpad((i * 7919 %% 10000)::text, 4, '0'),
       'Order #' || i,
       CASE WHEN ok THEN NULL ELSE 'card_declined' END,
       CASE WHEN ok THEN NULL ELSE 'Your card was declined.' END,
       created, created + interval '5 seconds', created + interval '5 seconds'
  FROM ({_SERIES}) s
"""  # noqa: S608 (built from constants at import, never from input)

SEED_REFUNDS = f"""
INSERT INTO refunds (id, charge_id, payment_intent_id, account, amount, currency, status, reason,
                     failure_reason, request_id, stripe_created, observed_at)
SELECT 're_B' || lpad(i::text, 12, '0') || 'r' || j,
       ch, CASE WHEN charge_only THEN NULL ELSE pi END, NULL,
       amount / 40 * 10, currency,
       CASE WHEN j = 2 AND i %% 11 = 0 THEN 'failed' WHEN j = 2 AND i %% 7 = 0 THEN 'pending' ELSE 'succeeded' END,
       (ARRAY['requested_by_customer', 'duplicate', NULL, 'fraudulent'])[i %% 4 + 1],
       CASE WHEN j = 2 AND i %% 11 = 0 THEN 'expired_or_canceled_card' END,
       NULL,
       created + j * interval '1 day', created + j * interval '1 day' + interval '5 seconds'
  FROM ({_SERIES}) s CROSS JOIN generate_series(1, 2) AS j
 WHERE ok AND j <= nref
"""  # noqa: S608

SEED_DISPUTES = f"""
INSERT INTO disputes (id, charge_id, payment_intent_id, account, livemode, amount, currency, status, reason,
                      evidence_due_by, evidence_submitted, owner, stripe_created, observed_at)
SELECT 'dp_B' || lpad(i::text, 12, '0'), ch, CASE WHEN charge_only THEN NULL ELSE pi END, NULL, false,
       amount, currency,
       (ARRAY['needs_response', 'under_review', 'won', 'lost'])[i %% 4 + 1],
       'fraudulent',
       CASE WHEN i %% 4 = 0 THEN created + interval '21 days' END,
       i %% 4 <> 0,
       CASE WHEN i %% 2 = 0 THEN 'U0OPS00001' END,
       created + interval '3 days', created + interval '3 days'
  FROM ({_SERIES}) s
 WHERE ok AND i %% 97 = 0
"""  # noqa: S608

SEED_REQUESTS = f"""
INSERT INTO refund_requests (payment_id, charge_id, amount, currency, status, requested_by, requested_via,
                             decided_by, decided_at, reject_reason, idempotency_key, created_at, updated_at,
                             expires_at)
SELECT CASE WHEN charge_only THEN ch ELSE pi END, ch, amount / 40 * 10, currency,
       (ARRAY['pending', 'approved', 'rejected', 'canceled'])[i / 1000 %% 4 + 1],
       'U0SUPPORT1', 'slash_command',
       CASE WHEN i / 1000 %% 4 IN (1, 2) THEN 'U0APPROVER' END,
       CASE WHEN i / 1000 %% 4 IN (1, 2) THEN created + interval '2 hours' END,
       CASE WHEN i / 1000 %% 4 = 2 THEN 'not eligible' END,
       'bench-request-' || i, created, created, created + interval '7 days'
  FROM ({_SERIES}) s
 WHERE ok AND i %% 1000 = 1
"""  # noqa: S608

_META = """
CREATE TABLE IF NOT EXISTS bench_seed (
    payments bigint NOT NULL, refunds bigint NOT NULL, disputes bigint NOT NULL, requests bigint NOT NULL,
    version text NOT NULL, seconds double precision NOT NULL, seeded_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class Store:
    """The seeded bench database and what it holds."""

    url: str
    payments: int
    refunds: int
    disputes: int
    requests: int
    seed_seconds: float
    reused: bool


def _seed_version() -> str:
    # The schema and the seed SQL both decide whether a stored seed is still valid.
    schema = "".join(m.sql for m in migrate.available())
    return hashlib.sha256(f"{SEED_VERSION}:{schema}".encode()).hexdigest()[:16]


def _stored_seed(url: str) -> tuple | None:
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            exists = conn.execute("SELECT to_regclass('bench_seed') IS NOT NULL").fetchone()
            if not exists or not exists[0]:
                return None
            return conn.execute(
                "SELECT payments, refunds, disputes, requests, version, seconds FROM bench_seed"
            ).fetchone()
    except psycopg.OperationalError:
        return None  # no such database yet


def _run_parallel(url: str, statements: list[tuple[str, dict]], jobs: int) -> None:
    """Run INSERT … SELECT statements on `jobs` connections at once (one core each)."""
    queue = list(statements)
    lock = threading.Lock()
    failures: list[BaseException] = []

    def work() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SET synchronous_commit = off")  # a bulk load; durability of each batch is moot
            while True:
                with lock:
                    if not queue or failures:
                        return
                    sql, params = queue.pop(0)
                try:
                    conn.execute(sql, params)
                except BaseException as exc:  # re-raised in the caller's thread
                    failures.append(exc)
                    return

    threads = [threading.Thread(target=work, daemon=True) for _ in range(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise failures[0]


def prepare_store(server_url: str, payments: int) -> Store:
    """The bench database with `payments` payments, reused when a matching seed is stored."""
    url = common.database_url(server_url, DB_NAME)
    version = _seed_version()
    found = _stored_seed(url)
    if found and found[0] == payments and found[4] == version:
        return Store(url, found[0], found[1], found[2], found[3], found[5], reused=True)

    print(f"seeding {payments:,} payments into {DB_NAME} (one-time; reused by later runs) …", flush=True)
    started = time.perf_counter()
    common.recreate_database(server_url, DB_NAME)
    # Batches of 100,000 payments over two connections: both cores insert, and each statement
    # stays short enough that a Ctrl-C does not wait long.
    batch = 100_000
    ranges = [(lo, min(lo + batch - 1, payments)) for lo in range(1, payments + 1, batch)]
    statements = [
        (sql, {"lo": lo, "hi": hi}) for lo, hi in ranges for sql in (SEED_PAYMENTS, SEED_REFUNDS, SEED_DISPUTES)
    ]
    _run_parallel(url, statements, jobs=2)
    with psycopg.connect(url, autocommit=True) as conn:
        # Refund requests only give the lookup's requests subquery rows to look at; their table is
        # the youngest part of the schema, so a mismatch there costs a warning, not the run.
        try:
            conn.execute(SEED_REQUESTS, {"lo": 1, "hi": payments})
        except psycopg.Error as exc:
            print(f"warning: refund requests not seeded ({type(exc).__name__}: {exc})".splitlines()[0], flush=True)
        # Freeze and analyze: sets hint bits and the visibility map as a long-lived table has them,
        # and gives the planner statistics for 1M rows (the lookup's plan depends on them).
        conn.execute("VACUUM (FREEZE, ANALYZE) payments, refunds, disputes, refund_requests")
        counts = [
            conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # noqa: S608 (fixed names)
            for t in ("payments", "refunds", "disputes", "refund_requests")
        ]
        seconds = time.perf_counter() - started
        conn.execute(_META)
        conn.execute(
            "INSERT INTO bench_seed (payments, refunds, disputes, requests, version, seconds) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (*counts, version, seconds),
        )
    print(f"seeded in {seconds:.1f} s", flush=True)
    return Store(url, *counts, seed_seconds=seconds, reused=False)


def sample_ids(url: str, count: int, rng: random.Random) -> list[str]:
    """Seeded ids to look up, mixed so every store-hit path runs.

    payments.id (pi_, or ch_ of a charge without a payment intent) 40%; the ch_ of a payment
    intent (the query's charge_id branch) 20%; re_ (refund → payment key) 30%; dp_ 10%.
    """
    mix = [
        ("SELECT id FROM payments", 0.40),
        ("SELECT charge_id FROM payments WHERE payment_intent_id IS NOT NULL", 0.20),
        ("SELECT id FROM refunds", 0.30),
        ("SELECT id FROM disputes", 0.10),
    ]
    ids: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT setseed(%s)", (rng.random(),))
        for sql, share in mix:
            want = max(1, int(count * share))
            found = [r[0] for r in conn.execute(f"{sql} ORDER BY random() LIMIT %s", (want,))]
            if found:  # small stores may have fewer disputes than wanted: repeat some
                ids += found + rng.choices(found, k=want - len(found))
    rng.shuffle(ids)
    return ids


# --------------------------------------------------------------------------------------------
# Signed requests
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Signed:
    """One signed slash command."""

    timestamp: str
    signature: str
    body: str


def sign_pool(ids: list[str], size: int, rng: random.Random) -> list[Signed]:
    """`size` distinct signed bodies (distinct trigger ids), signed now: Bolt accepts them for 5 minutes."""
    now = int(time.time())
    pool = []
    for n in range(size):
        body = slash_command_body(
            rng.choice(ids),
            response_url=f"https://hooks.slack.com/commands/T0001/{n}/bench{n:08d}",
            trigger_id=f"13345224609.{n}.{rng.getrandbits(64):016x}",
        )
        headers = slack_headers(body, SIGNING_SECRET, timestamp=now)
        pool.append(Signed(headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"], body))
    return pool


def post_signed(port: int, item: Signed) -> tuple[int, bytes]:
    """One signed slash command (a check before the load)."""
    return common.http(
        port,
        "POST",
        PATH,
        item.body.encode(),
        {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": item.timestamp,
            "X-Slack-Signature": item.signature,
        },
    )


# --------------------------------------------------------------------------------------------
# Load generators
# --------------------------------------------------------------------------------------------
@dataclass
class Result(common.Measured):
    """One measured run."""

    misses: int = 0  # 200 without the lookup answer (ours only)


WRK_LUA = r"""
-- Generated by bench/lookup_bench.py: POST pre-signed slash commands, each body once (in order
-- from an offset), check every answer; done() (bench/common.py) reports percentiles as JSON.
local bodies_path = %(bodies)s
local expect = %(expect)s
counters = {"errors", "misses"}

function init(args)
  tss, sigs, bodies = {}, {}, {}
  for line in io.lines(bodies_path) do
    local ts, sig, body = line:match("^(%%d+) (%%S+) (.*)$")
    tss[#tss + 1] = ts
    sigs[#sigs + 1] = sig
    bodies[#bodies + 1] = body
  end
  n = #bodies
  local offset = tonumber(args[1] or "0")
  local nthreads = tonumber(args[2] or "1")
  i = (offset + tid * math.floor((n - offset) / nthreads)) %% n
  errors, misses, problem = 0, 0, ""
end

function request()
  i = i %% n + 1
  return wrk.format("POST", %(path)s, {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["X-Slack-Request-Timestamp"] = tss[i],
    ["X-Slack-Signature"] = sigs[i],
  }, bodies[i])
end

function response(status, headers, body)
  if status ~= 200 then
    errors = errors + 1
    if problem == "" then problem = "HTTP " .. status .. ": " .. string.sub(body or "", 1, 200) end
  elseif expect ~= "" and not string.find(body, expect, 1, true) then
    misses = misses + 1
    if problem == "" then problem = "miss: " .. string.sub(body or "", 1, 200) end
  end
end
"""


class WrkLoad(common.Wrk):
    """wrk replaying pre-signed slash commands from a file through a Lua script."""

    def __init__(self, wrk: str, workdir: Path, threads: int = 1):
        super().__init__(wrk, workdir, threads)
        self.expect = ""

    def prepare(self, name: str, port: int, pool: list[Signed]) -> None:
        """Write the pool as lines of `timestamp signature body` and the Lua script reading it."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        bodies = self.workdir / f"bodies-{name}.txt"
        with bodies.open("w") as fh:
            for item in pool:
                fh.write(f"{item.timestamp} {item.signature} {item.body}\n")
        # json.dumps gives a quoted, escaped string Lua reads the same way (ASCII only, as these are).
        quoted = {k: json.dumps(v) for k, v in {"bodies": str(bodies), "path": PATH, "expect": self.expect}.items()}
        self.write_script(name, WRK_LUA % quoted)

    def run(self, port: int, offset: int, clients: int, seconds: float) -> Result:
        """Load `port` for `seconds` with `clients` connections, starting at pool[offset]."""
        data, cpu = self.run_script(port, PATH, clients, seconds, str(offset))
        return Result(
            completed=data["completed"],
            seconds=data["duration_us"] / 1e6,
            errors=data["errors"] + data["socket_errors"],
            misses=data["misses"],
            p50_ms=data["p50_us"] / 1000,
            p99_ms=data["p99_us"] / 1000,
            generator_cpu=cpu,
            first_problem=data["first_problem"],
            details={
                "mean_ms": data["mean_us"] / 1000,
                "max_ms": data["max_us"] / 1000,
                "socket_errors": data["socket_errors"],
            },
        )


class PythonLoad:
    """An asyncio load generator in this process (used when wrk is unavailable; it takes more CPU)."""

    def __init__(self) -> None:
        self.expect = ""
        self.wire: list[bytes] = []

    def prepare(self, name: str, port: int, pool: list[Signed]) -> None:
        """Render every request to bytes once, outside the measured time."""
        self.wire = [
            (
                f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: keep-alive\r\n"
                f"Content-Type: application/x-www-form-urlencoded\r\nX-Slack-Request-Timestamp: {s.timestamp}\r\n"
                f"X-Slack-Signature: {s.signature}\r\nContent-Length: {len(s.body)}\r\n\r\n{s.body}"
            ).encode()
            for s in pool
        ]

    def run(self, port: int, offset: int, clients: int, seconds: float) -> Result:
        """Load `port` for `seconds` with `clients` connections, starting at wire[offset]."""
        wire, expect, result = self.wire, self.expect.encode(), Result()
        counter = itertools.count(offset)  # shared: each body is sent once until the pool runs out

        def answered(_: None, status: int, body: bytes) -> None:
            if status != 200:
                result.errors += 1
                result.first_problem = result.first_problem or f"HTTP {status}: {body[:200]!r}"
            elif expect and expect not in body:
                result.misses += 1
                result.first_problem = result.first_problem or f"miss: {body[:200]!r}"

        return common.drive(port, clients, seconds, lambda: (None, wire[next(counter) % len(wire)]), answered, result)


# --------------------------------------------------------------------------------------------
# One target: start, check, warm up, measure, stop
# --------------------------------------------------------------------------------------------
def measure(
    server: common.Server,
    check_path: str,
    expect: str,
    load: WrkLoad | PythonLoad,
    ids: list[str],
    args: argparse.Namespace,
    rng: random.Random,
) -> Result:
    """Start one server, check it, warm up, measure; the server is stopped however this ends."""
    # Enough distinct bodies that no signature repeats below ~6,000 req/s; signed right before use,
    # so every timestamp is seconds old when sent (Bolt refuses those older than 5 minutes).
    size = min(200_000, max(20_000, int((args.seconds + args.warmup) * 6000)))
    with common.serving(server, "/healthz"):
        status, body = common.http(server.port, "GET", check_path, timeout=2)
        if status != 200:
            raise RuntimeError(f"{server.name}: GET {check_path} answered {status}: {body[:300]!r}")
        pool = sign_pool(ids, size, rng)
        status, body = post_signed(server.port, pool[0])
        if status != 200 or expect.encode() not in body:
            raise RuntimeError(
                f"{server.name}: a signed lookup answered {status}: {body[:300]!r}; "
                f"log {server.log_path}:\n{server.log_tail()}"
            )
        load.expect = expect
        load.prepare(server.name, server.port, pool)
        warm = Result()
        if args.warmup:  # every worker opens its Postgres connection and fills its caches
            warm = load.run(server.port, 1, args.clients, args.warmup)
        offset = 1 + warm.completed
        result = common.measure_cpu(server, lambda: load.run(server.port, offset, args.clients, args.seconds))
        result.details.update(pool=size, reused_bodies=offset + result.completed > size, warmup=warm.completed)
    result.details["log_problems"] = server.log_problems()
    return result


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------
def _row(label: str, cells: list[str]) -> str:
    return common.row(label, cells, 26)


def report(bare: Result, ours: Result, store: Store, args: argparse.Namespace, generator: str) -> None:
    """The table, the setting, and the verdict on the goal."""
    cpus = os.cpu_count() or 0
    print()
    print(_row("", ["req/s", "p50 ms", "p99 ms", "errors", "misses"]))
    for label, r in (("bare Bolt (ack only)", bare), ("refund desk lookup", ours)):
        print(
            _row(
                label,
                [
                    f"{r.rps:,.0f}",
                    f"{r.p50_ms:.1f}",
                    f"{r.p99_ms:.1f}",
                    f"{r.errors:,}",
                    "—" if r is bare else f"{r.misses:,}",
                ],
            )
        )

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}" if b else "—"

    print(
        _row(
            "ratio (ours / bare)",
            [ratio(ours.rps, bare.rps), ratio(ours.p50_ms, bare.p50_ms), ratio(ours.p99_ms, bare.p99_ms), "", ""],
        )
    )
    print()
    seeded = (
        f"reused; seeded earlier in {store.seed_seconds:.0f} s"
        if store.reused
        else f"seeded now in {store.seed_seconds:.0f} s"
    )
    print(
        f"store      {store.payments:,} payments, {store.refunds:,} refunds, {store.disputes:,} disputes, "
        f"{store.requests:,} refund requests ({seeded})"
    )
    print(
        f"setup      {cpus} CPUs; gunicorn, {args.workers} sync workers per app (they close the connection after"
        " each response); the apps run one after the other"
    )
    print(
        f"load       {args.clients} clients, {args.seconds:g} s measured after {args.warmup:g} s warm-up; "
        f"generator: {generator}"
    )
    noisy: list[str] = []
    for label, r in (("bare", bare), ("ours", ours)):
        # CPU per request is the figure least moved by other load on the machine.
        per = 1000 / r.completed if r.completed else 0.0
        print(
            f"cpu {label}   {r.cpu_shares()} (of one core); "
            f"per request {r.server_cpu * per:.2f} ms gunicorn + {r.postgres_cpu * per:.2f} ms postgres"
        )
        if r.details.get("reused_bodies"):
            print(f"note       {label}: more requests than pre-signed bodies; some bodies were sent twice")
        if r.noisy:
            noisy.append(label)
    if noisy:
        print(
            f"WARNING    other processes took over 15% of a core while measuring {' and '.join(noisy)}; "
            "req/s and latency are understated. Rerun on a quiet machine."
        )
    for label, r in (("bare", bare), ("ours", ours)):
        common.print_problems(label, r, WORK / "logs")
    met = ours.rps >= GOAL_RPS and ours.p99_ms < GOAL_P99_MS and not ours.errors and not ours.misses
    print(
        f"goal       >= {GOAL_RPS:,} lookups/s and p99 < {GOAL_P99_MS:.0f} ms at {GOAL_CLIENTS} clients: "
        f"{'MET' if met else 'NOT MET'} ({ours.rps:,.0f}/s, p99 {ours.p99_ms:.1f} ms)"
        f"{common.clients_note(args.clients, GOAL_CLIENTS)}"
    )


# --------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line flags, bounded so a run cannot take unbounded time."""
    p = argparse.ArgumentParser(prog="python -m bench.lookup_bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--payments", type=int, default=1_000_000, help="payments in the store (default 1,000,000)")
    p.add_argument("--clients", type=int, default=32, help="concurrent connections (default 32)")
    p.add_argument(
        "--seconds", type=float, default=15, help=f"measured seconds per app (default 15, max {MAX_SECONDS})"
    )
    # 4: the Procfile's default (WEB_CONCURRENCY) and 2 × cores as `refund-desk web` picks, so the
    # figures match production and shared/PERFORMANCE.md. A sync worker waits on Postgres for part of
    # each request, so two per core keep both cores busy; more only adds context switches.
    p.add_argument("--workers", type=int, default=4, help="gunicorn sync workers per app (default 4 = 2 × cores)")
    p.add_argument("--warmup", type=float, default=2, help="warm-up seconds before each measurement (default 2)")
    p.add_argument(
        "--generator",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="load generator: wrk (installed with apt-get when missing) or the Python fallback",
    )
    p.add_argument("--seed", type=int, default=1, help="random seed for the ids looked up")
    args = p.parse_args(argv)
    common.check_args(p, args, MAX_SECONDS)
    if not 1_000 <= args.payments <= 5_000_000:
        p.error("--payments must be between 1,000 and 5,000,000")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 unless something failed to start (timings never fail the run)."""
    args = parse_args(argv)
    common.unwind_on_sigterm()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored (`cmd &`)
    rng = random.Random(args.seed)
    started = time.perf_counter()

    load, generator = common.choose_load(
        args.generator, lambda wrk: WrkLoad(wrk, WORK / "wrk"), PythonLoad, "1 thread, Lua over pre-signed bodies"
    )
    if load is None:
        print(generator, file=sys.stderr)
        return 2
    print(f"generator: {generator}", flush=True)

    try:
        server_url = embedded.start(common.DATA)  # stopped when the last process using it exits
        store = prepare_store(server_url, args.payments)
        print(
            f"store: {store.payments:,} payments, {store.refunds:,} refunds "
            f"({'reused' if store.reused else 'seeded'}; seeding took {store.seed_seconds:.1f} s)",
            flush=True,
        )
        ids = sample_ids(store.url, min(100_000, max(5_000, args.payments // 10)), rng)
        env = common.server_env(store.url, SLACK_SIGNING_SECRET=SIGNING_SECRET, STRIPE_WEBHOOK_SECRET="whsec_bench")
        logs = WORK / "logs"
        bare = common.Server(
            "bare", "bench.bare_bolt:create_app()", common.free_port(), args.workers, env, logs / "bare.log"
        )
        ours = common.Server("ours", "app:create_app()", common.free_port(), args.workers, env, logs / "ours.log")
        print(f"measuring bare Bolt ({args.warmup:g} s warm-up + {args.seconds:g} s) …", flush=True)
        bare_result = measure(bare, "/healthz", "", load, ids, args, rng)
        print(f"measuring refund desk ({args.warmup:g} s warm-up + {args.seconds:g} s) …", flush=True)
        ours_result = measure(ours, "/readyz", '"blocks"', load, ids, args, rng)  # readyz: the store answers
    except KeyboardInterrupt:
        print("\ninterrupted; servers stopped", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"benchmark could not run: {exc}", file=sys.stderr)
        return 1
    report(bare_result, ours_result, store, args, generator)
    print(f"total      {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
