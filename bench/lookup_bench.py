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
import asyncio
import contextlib
import hashlib
import itertools
import json
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit, urlunsplit

import psycopg

from settings import VARIABLES
from standins.signing import slack_headers, slash_command_body
from store import embedded, migrate

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".data" / "bench"  # the embedded server, shared with the other benchmarks
WORK = DATA / "lookup"  # this benchmark's wrk scripts, signed bodies and gunicorn logs
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


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


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
    url = _with_database(server_url, DB_NAME)
    version = _seed_version()
    found = _stored_seed(url)
    if found and found[0] == payments and found[4] == version:
        return Store(url, found[0], found[1], found[2], found[3], found[5], reused=True)

    print(f"seeding {payments:,} payments into {DB_NAME} (one-time; reused by later runs) …", flush=True)
    started = time.perf_counter()
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    migrate.migrate(url)
    # Batches of 100,000 payments over two connections: both cores insert, and each statement
    # stays short enough that a Ctrl-C does not wait long.
    batch = 100_000
    ranges = [(lo, min(lo + batch - 1, payments)) for lo in range(1, payments + 1, batch)]
    statements = [(sql, {"lo": lo, "hi": hi}) for lo, hi in ranges
                  for sql in (SEED_PAYMENTS, SEED_REFUNDS, SEED_DISPUTES)]
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
        counts = [conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # noqa: S608 (fixed names)
                  for t in ("payments", "refunds", "disputes", "refund_requests")]
        seconds = time.perf_counter() - started
        conn.execute(_META)
        conn.execute("INSERT INTO bench_seed (payments, refunds, disputes, requests, version, seconds) "
                     "VALUES (%s, %s, %s, %s, %s, %s)", (*counts, version, seconds))
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


# --------------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------------
def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(database_url: str) -> dict[str, str]:
    """The environment of the web process: ours only, none inherited (no SLACK_APP_TOKEN, config file…)."""
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES and k != "GUNICORN_CMD_ARGS"}
    env.update(
        DATABASE_URL=database_url,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_BOT_TOKEN="xoxb-bench",
        STRIPE_SECRET_KEY="sk_test_bench",
        STRIPE_WEBHOOK_SECRET="whsec_bench",
        STRIPE_API_BASE="http://127.0.0.1:9",  # nothing listens there: a store hit never calls Stripe
        SLACK_API_URL="http://127.0.0.1:9/api/",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    return env


@dataclass
class Server:
    """A gunicorn master serving one app on a loopback port."""

    name: str
    app: str
    port: int
    workers: int
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen | None = None

    def start(self, ready_path: str, timeout: float = 60) -> None:
        """Start gunicorn and wait until `ready_path` answers 200."""
        cmd = [
            sys.executable, "-m", "gunicorn",
            "--bind", f"127.0.0.1:{self.port}",
            "--workers", str(self.workers),
            "--worker-class", "sync",
            "--log-level", "warning",  # and no --access-logfile: gunicorn's access log is off by default
            "--graceful-timeout", "5",
            "--chdir", str(ROOT),
            self.app,
        ]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        # Own session: a Ctrl-C reaches only us, and we stop gunicorn in order (terminate, wait).
        self.proc = subprocess.Popen(cmd, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name}: gunicorn exited ({self.proc.returncode}); "
                                   f"log {self.log_path}:\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                if http_get(self.port, ready_path)[0] == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name}: not ready after {timeout:.0f} s; log {self.log_path}:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM (gunicorn's graceful stop), then SIGKILL if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # the master and its workers
            self.proc.wait(timeout=5)

    def log_tail(self, lines: int = 30) -> str:
        """The end of gunicorn's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def log_problems(self) -> int:
        """How many tracebacks or errors gunicorn logged (WARNING level is all we let through)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return 0
        return sum(1 for line in text.splitlines() if "Traceback" in line or " ERROR " in line or "[ERROR]" in line)


@contextlib.contextmanager
def serving(server: Server, ready_path: str) -> Iterator[Server]:
    """A started server, stopped however the block ends."""
    try:
        server.start(ready_path)
        yield server
    finally:
        server.stop()


def http_get(port: int, path: str, timeout: float = 2) -> tuple[int, bytes]:
    """GET on loopback; (status, body)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as resp:  # noqa: S310
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def post_signed(port: int, item: Signed, timeout: float = 10) -> tuple[int, bytes]:
    """One signed slash command (a check before the load)."""
    req = urllib.request.Request(  # noqa: S310 (loopback)
        f"http://127.0.0.1:{port}{PATH}", data=item.body.encode(), method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded",
                 "X-Slack-Request-Timestamp": item.timestamp, "X-Slack-Signature": item.signature})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# --------------------------------------------------------------------------------------------
# CPU accounting: where the two cores went during a measured run
# --------------------------------------------------------------------------------------------
def _tree_cpu(pid: int | None) -> dict[int, float]:
    """user+system seconds of a process and its descendants, by pid (empty if psutil is missing)."""
    try:
        import psutil
    except ImportError:
        return {}
    if pid is None:
        return {}
    out: dict[int, float] = {}
    try:
        root = psutil.Process(pid)
        for proc in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                t = proc.cpu_times()
                out[proc.pid] = t.user + t.system
    except psutil.Error:
        pass
    return out


def _cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(v - before.get(pid, 0.0) for pid, v in after.items())


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy since boot (/proc/stat; 0 where it does not exist)."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def postmaster_pid() -> int | None:
    """The bench Postgres server's pid (first line of postmaster.pid)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int((DATA / "postgres" / "postmaster.pid").read_text().splitlines()[0])
    return None


# --------------------------------------------------------------------------------------------
# Load generators
# --------------------------------------------------------------------------------------------
@dataclass
class Result:
    """One measured run."""

    requests: int = 0
    seconds: float = 0.0
    errors: int = 0  # not 200, or a socket error / timeout
    misses: int = 0  # 200 without the lookup answer (ours only)
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    generator_cpu: float = 0.0  # CPU seconds the load generator used
    server_cpu: float = 0.0
    postgres_cpu: float = 0.0
    machine_cpu: float = 0.0  # CPU seconds every process on the machine used (to spot outside load)
    first_problem: str = ""
    details: dict = field(default_factory=dict)

    @property
    def rps(self) -> float:
        """Completed requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0


WRK_LUA = r"""
-- Generated by bench/lookup_bench.py: POST pre-signed slash commands, each body once (in order
-- from an offset), check every answer, report percentiles as JSON from done().
local bodies_path = %(bodies)s
local expect = %(expect)s
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

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
  errors, misses, first_problem = 0, 0, ""
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
    if first_problem == "" then first_problem = "HTTP " .. status .. ": " .. string.sub(body or "", 1, 200) end
  elseif expect ~= "" and not string.find(body, expect, 1, true) then
    misses = misses + 1
    if first_problem == "" then first_problem = "miss: " .. string.sub(body or "", 1, 200) end
  end
end

function done(summary, latency, requests)
  local errors, misses, problem = 0, 0, ""
  for _, t in ipairs(threads) do
    errors = errors + t:get("errors")
    misses = misses + t:get("misses")
    if problem == "" then problem = t:get("first_problem") end
  end
  local e = summary.errors
  problem = string.gsub(problem, '[^%%w .:_%%-]', '?')  -- safe inside a JSON string
  io.write(string.format(
    'BENCH_RESULT {"requests": %%d, "duration_us": %%d, "errors": %%d, "misses": %%d, "connect": %%d, ' ..
    '"read": %%d, "write": %%d, "timeout": %%d, "p50_us": %%d, "p99_us": %%d, "mean_us": %%d, ' ..
    '"max_us": %%d, "first_problem": "%%s"}\n',
    summary.requests, summary.duration, errors, misses, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean, latency.max, problem))
end
"""


def ensure_wrk() -> tuple[str | None, str]:
    """wrk's path, installing the Debian package when missing and we are root; else why not."""
    found = shutil.which("wrk")
    if found:
        return found, "wrk (found)"
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None, "wrk missing (install it: apt-get install -y wrk)"
    print("wrk not found; apt-get install -y wrk …", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "install", "-y", "-q", "wrk"], ["apt-get", "update", "-q"],
                ["apt-get", "install", "-y", "-q", "wrk"]):
        done = subprocess.run(cmd, env=env, capture_output=True, timeout=300, check=False)
        if cmd[1] == "install" and done.returncode == 0:
            break
    found = shutil.which("wrk")
    return (found, "wrk (installed with apt-get)") if found else (None, "apt-get install wrk failed")


class WrkLoad:
    """wrk (C, one event-loop thread) replaying pre-signed bodies from a file through a Lua script."""

    def __init__(self, wrk: str, workdir: Path, threads: int = 1):
        self.wrk = wrk
        self.expect = ""
        self.script = workdir / "unset.lua"
        self.workdir = workdir
        # One thread: at a few thousand req/s one epoll loop is far from busy, and every core
        # wrk leaves alone goes to the servers being measured.
        self.threads = threads

    def prepare(self, name: str, port: int, pool: list[Signed]) -> None:
        """Write the pool as lines of `timestamp signature body` and the Lua script reading it."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        bodies = self.workdir / f"bodies-{name}.txt"
        with bodies.open("w") as fh:
            for item in pool:
                fh.write(f"{item.timestamp} {item.signature} {item.body}\n")
        self.script = self.workdir / f"{name}.lua"
        # json.dumps gives a quoted, escaped string Lua reads the same way (ASCII only, as these are).
        quoted = {k: json.dumps(v) for k, v in {"bodies": str(bodies), "path": PATH, "expect": self.expect}.items()}
        self.script.write_text(WRK_LUA % quoted)

    def run(self, port: int, offset: int, clients: int, seconds: float) -> Result:
        """Load `port` for `seconds` with `clients` connections, starting at pool[offset]."""
        threads = min(self.threads, clients)
        cmd = [self.wrk, f"-t{threads}", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
               "-s", str(self.script), f"http://127.0.0.1:{port}{PATH}", "--", str(offset), str(threads)]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=seconds + 60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        line = next((ln for ln in out.splitlines() if ln.startswith("BENCH_RESULT ")), None)
        if line is None:
            raise RuntimeError(f"wrk printed no result:\n{out}")
        data = json.loads(line.removeprefix("BENCH_RESULT "))
        socket_errors = data["connect"] + data["read"] + data["write"] + data["timeout"]
        return Result(
            requests=data["requests"],
            seconds=data["duration_us"] / 1e6,
            errors=data["errors"] + socket_errors,
            misses=data["misses"],
            p50_ms=data["p50_us"] / 1000,
            p99_ms=data["p99_us"] / 1000,
            generator_cpu=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            first_problem=data["first_problem"],
            details={"mean_ms": data["mean_us"] / 1000, "max_ms": data["max_us"] / 1000,
                     "socket_errors": socket_errors},
        )


class PythonLoad:
    """An asyncio load generator in this process (used when wrk is unavailable; it takes more CPU)."""

    def __init__(self) -> None:
        self.expect = ""
        self.wire: list[bytes] = []

    def prepare(self, name: str, port: int, pool: list[Signed]) -> None:
        """Render every request to bytes once, outside the measured time."""
        self.wire = [
            (f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: keep-alive\r\n"
             f"Content-Type: application/x-www-form-urlencoded\r\nX-Slack-Request-Timestamp: {s.timestamp}\r\n"
             f"X-Slack-Signature: {s.signature}\r\nContent-Length: {len(s.body)}\r\n\r\n{s.body}").encode()
            for s in pool
        ]

    def run(self, port: int, offset: int, clients: int, seconds: float) -> Result:
        """Load `port` for `seconds` with `clients` connections, starting at wire[offset]."""
        before = resource.getrusage(resource.RUSAGE_SELF)
        result = asyncio.run(self._load(port, self.wire, offset, clients, seconds, self.expect.encode()))
        after = resource.getrusage(resource.RUSAGE_SELF)
        result.generator_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return result

    async def _load(self, port: int, wire: list[bytes], offset: int, clients: int, seconds: float,
                    expect: bytes) -> Result:
        result = Result()
        latencies: list[float] = []
        counter = itertools.count(offset)  # shared: each body is sent once until the pool runs out
        started = time.perf_counter()
        deadline = started + seconds

        async def client() -> None:
            reader: asyncio.StreamReader | None = None
            writer: asyncio.StreamWriter | None = None
            while time.perf_counter() < deadline:
                try:
                    if writer is None:
                        reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    assert reader is not None
                    payload = wire[next(counter) % len(wire)]
                    t0 = time.perf_counter()
                    writer.write(payload)
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
                    status = int(head[9:12])
                    length, close = None, False
                    for line in head.split(b"\r\n")[1:]:
                        key, _, value = line.partition(b":")
                        key = key.strip().lower()
                        if key == b"content-length":
                            length = int(value)
                        elif key == b"connection" and value.strip().lower() == b"close":
                            close = True
                    if length is None:
                        body, close = await reader.read(), True
                    else:
                        body = await reader.readexactly(length)
                    latencies.append(time.perf_counter() - t0)
                    result.requests += 1
                    if status != 200:
                        result.errors += 1
                        result.first_problem = result.first_problem or f"HTTP {status}: {body[:200]!r}"
                    elif expect and expect not in body:
                        result.misses += 1
                        result.first_problem = result.first_problem or f"miss: {body[:200]!r}"
                except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError,
                        ValueError) as exc:
                    result.errors += 1
                    result.first_problem = result.first_problem or f"{type(exc).__name__}: {exc}"
                    close = True
                if close and writer is not None:
                    writer.close()
                    with contextlib.suppress(OSError):
                        await writer.wait_closed()
                    reader = writer = None
            if writer is not None:
                writer.close()

        await asyncio.gather(*(client() for _ in range(clients)))
        result.seconds = time.perf_counter() - started
        if latencies:
            latencies.sort()
            result.p50_ms = latencies[int(0.50 * (len(latencies) - 1))] * 1000
            result.p99_ms = latencies[int(0.99 * (len(latencies) - 1))] * 1000
        return result


# --------------------------------------------------------------------------------------------
# One target: start, check, warm up, measure, stop
# --------------------------------------------------------------------------------------------
def measure(server: Server, check_path: str, expect: str, load: WrkLoad | PythonLoad, ids: list[str],
            args: argparse.Namespace, rng: random.Random) -> Result:
    """Start one server, check it, warm up, measure; the server is stopped however this ends."""
    # Enough distinct bodies that no signature repeats below ~6,000 req/s; signed right before use,
    # so every timestamp is seconds old when sent (Bolt refuses those older than 5 minutes).
    size = min(200_000, max(20_000, int((args.seconds + args.warmup) * 6000)))
    with serving(server, "/healthz"):
        status, body = http_get(server.port, check_path)
        if status != 200:
            raise RuntimeError(f"{server.name}: GET {check_path} answered {status}: {body[:300]!r}")
        pool = sign_pool(ids, size, rng)
        status, body = post_signed(server.port, pool[0])
        if status != 200 or expect.encode() not in body:
            raise RuntimeError(f"{server.name}: a signed lookup answered {status}: {body[:300]!r}; "
                               f"log {server.log_path}:\n{server.log_tail()}")
        load.expect = expect
        load.prepare(server.name, server.port, pool)
        warm = Result()
        if args.warmup:  # every worker opens its Postgres connection and fills its caches
            warm = load.run(server.port, 1, args.clients, args.warmup)
        offset = 1 + warm.requests
        pid = server.proc.pid if server.proc else None
        pg_before, srv_before, busy_before = _tree_cpu(postmaster_pid()), _tree_cpu(pid), machine_busy()
        result = load.run(server.port, offset, args.clients, args.seconds)
        pg_after, srv_after, busy_after = _tree_cpu(postmaster_pid()), _tree_cpu(pid), machine_busy()
        result.machine_cpu = busy_after - busy_before
        result.server_cpu = _cpu_delta(srv_before, srv_after)
        result.postgres_cpu = _cpu_delta(pg_before, pg_after)
        result.details.update(pool=size, reused_bodies=offset + result.requests > size, warmup=warm.requests)
    result.details["log_problems"] = server.log_problems()
    return result


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------
def _row(label: str, cells: list[str]) -> str:
    return f"{label:<26}" + "".join(f"{c:>10}" for c in cells)


def report(bare: Result, ours: Result, store: Store, args: argparse.Namespace, generator: str) -> None:
    """The table, the setting, and the verdict on the goal."""
    cpus = os.cpu_count() or 0
    print()
    print(_row("", ["req/s", "p50 ms", "p99 ms", "errors", "misses"]))
    for label, r in (("bare Bolt (ack only)", bare), ("refund desk lookup", ours)):
        print(_row(label, [f"{r.rps:,.0f}", f"{r.p50_ms:.1f}", f"{r.p99_ms:.1f}", f"{r.errors:,}",
                           "—" if r is bare else f"{r.misses:,}"]))

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}" if b else "—"

    print(_row("ratio (ours / bare)", [ratio(ours.rps, bare.rps), ratio(ours.p50_ms, bare.p50_ms),
                                       ratio(ours.p99_ms, bare.p99_ms), "", ""]))
    print()
    seeded = (f"reused; seeded earlier in {store.seed_seconds:.0f} s" if store.reused
              else f"seeded now in {store.seed_seconds:.0f} s")
    print(f"store      {store.payments:,} payments, {store.refunds:,} refunds, {store.disputes:,} disputes, "
          f"{store.requests:,} refund requests ({seeded})")
    print(f"setup      {cpus} CPUs; gunicorn, {args.workers} sync workers per app (they close the connection after"
          " each response); the apps run one after the other")
    print(f"load       {args.clients} clients, {args.seconds:g} s measured after {args.warmup:g} s warm-up; "
          f"generator: {generator}")
    noisy: list[str] = []
    for label, r in (("bare", bare), ("ours", ours)):
        core = r.seconds or 1
        other = max(0.0, r.machine_cpu - r.server_cpu - r.postgres_cpu - r.generator_cpu) if r.machine_cpu else 0.0
        # CPU per request is the figure least moved by other load on the machine.
        per = 1000 / r.requests if r.requests else 0.0
        print(f"cpu {label}   gunicorn {100 * r.server_cpu / core:.0f}%, postgres {100 * r.postgres_cpu / core:.0f}%, "
              f"generator {100 * r.generator_cpu / core:.0f}%, other {100 * other / core:.0f}% (of one core); "
              f"per request {r.server_cpu * per:.2f} ms gunicorn + {r.postgres_cpu * per:.2f} ms postgres")
        if r.details.get("reused_bodies"):
            print(f"note       {label}: more requests than pre-signed bodies; some bodies were sent twice")
        if other / core > 0.15:
            noisy.append(label)
    if noisy:
        print(f"WARNING    other processes took over 15% of a core while measuring {' and '.join(noisy)}; "
              "req/s and latency are understated. Rerun on a quiet machine.")
    for label, r in (("bare", bare), ("ours", ours)):
        if r.first_problem:
            print(f"first problem ({label}): {r.first_problem}")
        if r.details.get("log_problems"):
            print(f"{label}: gunicorn logged {r.details['log_problems']} error lines; see {WORK / 'logs'}")
    met = ours.rps >= GOAL_RPS and ours.p99_ms < GOAL_P99_MS and not ours.errors and not ours.misses
    where = "" if args.clients == GOAL_CLIENTS else f" (measured at {args.clients} clients; the goal is at 32)"
    print(f"goal       >= {GOAL_RPS:,} lookups/s and p99 < {GOAL_P99_MS:.0f} ms at {GOAL_CLIENTS} clients: "
          f"{'MET' if met else 'NOT MET'} ({ours.rps:,.0f}/s, p99 {ours.p99_ms:.1f} ms){where}")


# --------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line flags, bounded so a run cannot take unbounded time."""
    p = argparse.ArgumentParser(prog="python -m bench.lookup_bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--payments", type=int, default=1_000_000, help="payments in the store (default 1,000,000)")
    p.add_argument("--clients", type=int, default=32, help="concurrent connections (default 32)")
    p.add_argument("--seconds", type=float, default=15,
                   help=f"measured seconds per app (default 15, max {MAX_SECONDS})")
    # 4: the Procfile's default (WEB_CONCURRENCY) and 2 × cores as `refund-desk web` picks, so the
    # figures match production and shared/PERFORMANCE.md. A sync worker waits on Postgres for part of
    # each request, so two per core keep both cores busy; more only adds context switches.
    p.add_argument("--workers", type=int, default=4, help="gunicorn sync workers per app (default 4 = 2 × cores)")
    p.add_argument("--warmup", type=float, default=2, help="warm-up seconds before each measurement (default 2)")
    p.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto",
                   help="load generator: wrk (installed with apt-get when missing) or the Python fallback")
    p.add_argument("--seed", type=int, default=1, help="random seed for the ids looked up")
    args = p.parse_args(argv)
    if not 0 < args.seconds <= MAX_SECONDS:
        p.error(f"--seconds must be in (0, {MAX_SECONDS}]")
    if not 0 <= args.warmup <= 10:
        p.error("--warmup must be in [0, 10]")
    if not 1_000 <= args.payments <= 5_000_000:
        p.error("--payments must be between 1,000 and 5,000,000")
    if not 1 <= args.clients <= 1024:
        p.error("--clients must be between 1 and 1024")
    if not 1 <= args.workers <= 64:
        p.error("--workers must be between 1 and 64")
    return args


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM unwinds like Ctrl-C, so every server is stopped


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 unless something failed to start (timings never fail the run)."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored (`cmd &`)
    rng = random.Random(args.seed)
    started = time.perf_counter()

    if args.generator == "python":
        load: WrkLoad | PythonLoad = PythonLoad()
        generator = "python asyncio (in-process; it competes with the servers for CPU)"
    else:
        wrk, how = ensure_wrk()
        if wrk:
            load, generator = WrkLoad(wrk, WORK / "wrk"), f"{how}, 1 thread, Lua over pre-signed bodies"
        elif args.generator == "wrk":
            print(how, file=sys.stderr)
            return 2
        else:
            load, generator = PythonLoad(), f"python asyncio ({how}; it competes with the servers for CPU)"
    print(f"generator: {generator}", flush=True)

    try:
        server_url = embedded.start(DATA)  # stopped when the last process using it exits
        store = prepare_store(server_url, args.payments)
        print(f"store: {store.payments:,} payments, {store.refunds:,} refunds "
              f"({'reused' if store.reused else 'seeded'}; seeding took {store.seed_seconds:.1f} s)", flush=True)
        ids = sample_ids(store.url, min(100_000, max(5_000, args.payments // 10)), rng)
        env = server_env(store.url)
        logs = WORK / "logs"
        bare = Server("bare", "bench.bare_bolt:create_app()", free_port(), args.workers, env, logs / "bare.log")
        ours = Server("ours", "app:create_app()", free_port(), args.workers, env, logs / "ours.log")
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
