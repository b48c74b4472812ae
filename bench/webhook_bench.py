"""Webhook benchmark: freshly signed Stripe events POSTed to the `web` process under gunicorn.

    python -m bench.webhook_bench [--clients 32] [--seconds 10] [--workers 4]

Starts the embedded Postgres under .data/bench, recreates the database refund_desk_webhook_bench,
then measures, one after the other with the same client settings and a short warm-up each:

1. new events: `POST /webhooks/stripe` on our app (`app:create_app()`), every request a real
   fixture event with a unique id, signed with STRIPE_WEBHOOK_SECRET moments before the run;
2. duplicates: the same endpoint, re-sending (freshly re-signed) events stored in step 1;
3. bare: `POST /bare` of bench/bare_store.py on its own gunicorn (same workers, same class),
   storing the same bodies raw in `bare_events` without verifying or parsing them.

Every answer must be 200 (and say `"duplicate": false` / `true` as expected); afterwards the
number of stored events is checked against the number acknowledged. Prints req/s, p50/p99 ms
and errors for each, the ratio ours-new / bare, and whether the issue's goal is met.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import itertools
import json
import os
import sys
import time
from dataclasses import dataclass

import psycopg

from bench import bare_store, common
from store import embedded

WORK = common.DATA / "webhook"
DB_NAME = "refund_desk_webhook_bench"
WEBHOOK_SECRET = "whsec_bench_0123456789abcdef0123456789abcdef"
OURS_PATH = "/webhooks/stripe"
BARE_PATH = "/bare"
FIXTURES = common.ROOT / "tests" / "fixtures" / "stripe"
# Real events of 2–4.5 KB (pretty-printed, as Stripe sends them): about 2.7 KB on average.
FIXTURE_NAMES = (
    "event_charge.refunded__stripe-ruby-mock.json",
    "event_charge.failed__stripe-ruby-mock.json",
    "event_charge.dispute.created__stripe-ruby-mock.json",
    "event_charge.dispute.closed__lago_2020-08-27_lost.json",
    "event_charge.dispute.closed__lago_basil_warning_closed.json",
    "event_charge.refund.updated__lago_basil.json",
)
GOAL_RPS = 1200
GOAL_P99_MS = 50.0
GOAL_RATIO = 0.70
GOAL_CLIENTS = 32
MAX_SECONDS = 60  # bounds the run (3 phases) and keeps every signature inside Stripe's 300 s tolerance
MEASURED_PREFIX = "evt_BENCHm"  # ids of the measured new events (EventFactory.event_id("m", n))
MAX_POOL = 400_000  # signed bodies per phase (~1.1 GB of file and wrk memory at most)
# Log lines counted as problems: any naming ERROR (a wider net than the lookup benchmark's).
PROBLEM_MARKS = ("Traceback", "ERROR")


# --------------------------------------------------------------------------------------------
# Signed events
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Signed:
    """One event body and its Stripe-Signature header."""

    id: str
    header: str
    body: bytes


class EventFactory:
    """Fixture events with a unique id each: `evt_` + 24 characters, like Stripe's."""

    def __init__(self, names: tuple[str, ...] = FIXTURE_NAMES):
        self.templates: list[tuple[bytes, bytes]] = []
        for name in names:
            text = (FIXTURES / name).read_bytes()
            event_id = json.loads(text)["id"].encode()
            # Split once around the top-level id (the first "id" in Stripe's key order), so a new
            # body is two concatenations instead of a json round trip.
            head, sep, tail = text.partition(b'"id": "' + event_id + b'"')
            if not sep:
                raise RuntimeError(f"{name}: top-level id not found")
            self.templates.append((head + b'"id": "', b'"' + tail))

    @staticmethod
    def event_id(phase: str, n: int) -> str:
        """A distinct id per phase letter and index (w: warm-up, m: measured, c: checks)."""
        return f"evt_BENCH{phase}{n:018d}"

    @staticmethod
    def index(event_id: str) -> int:
        """The index an id was made from."""
        return int(event_id[-18:])

    def body(self, event_id: str, n: int) -> bytes:
        """Fixture n (round robin) carrying event_id."""
        head, tail = self.templates[n % len(self.templates)]
        return head + event_id.encode() + tail

    def signed(self, phase: str, start: int, count: int, secret: str) -> list[Signed]:
        """`count` new events signed now (one timestamp: Stripe accepts it for 300 s)."""
        return [
            sign(self.event_id(phase, n), self.body(self.event_id(phase, n), n), secret)
            for n in range(start, start + count)
        ]

    @property
    def mean_size(self) -> float:
        """Average body size over the fixtures, in bytes."""
        id_len = len(self.event_id("m", 0))
        return sum(len(h) + id_len + len(t) for h, t in self.templates) / len(self.templates)


def sign(event_id: str, body: bytes, secret: str, timestamp: int | None = None) -> Signed:
    """Sign like Stripe (standins.signing.stripe_signature), without its bytes→str→bytes round trip."""
    ts = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), str(ts).encode() + b"." + body, hashlib.sha256).hexdigest()
    return Signed(event_id, f"t={ts},v1={mac}", body)


# --------------------------------------------------------------------------------------------
# Database
# --------------------------------------------------------------------------------------------
def fresh_database(server_url: str) -> str:
    """Drop and recreate the bench database, migrate it, add bare_events; return its URL."""
    url = common.recreate_database(server_url, DB_NAME)
    bare_store.ensure_table(url)
    return url


def count_stored(url: str, table: str, prefix: str) -> int:
    """Rows of `table` whose id starts with prefix."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            f"SELECT count(*) FROM {table} WHERE id LIKE %s",  # noqa: S608 (fixed names)
            (prefix + "%",),
        ).fetchone()
    return int(row[0]) if row else 0


def stored_ids(url: str, prefix: str, limit: int) -> list[str]:
    """Ids of stored inbox events starting with prefix."""
    with psycopg.connect(url, autocommit=True) as conn:
        return [
            r[0] for r in conn.execute("SELECT id FROM stripe_events WHERE id LIKE %s LIMIT %s", (prefix + "%", limit))
        ]


def missing_ids(url: str, table: str, ids: list[str]) -> int:
    """How many of ids are not in table."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            f"SELECT count(*) FROM {table} WHERE id = ANY(%s)",  # noqa: S608 (fixed names)
            (ids,),
        ).fetchone()
    return len(set(ids)) - (int(row[0]) if row else 0)


# --------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------
def post_event(port: int, path: str, item: Signed) -> tuple[int, bytes]:
    """POST one signed event as Stripe does."""
    return common.http(
        port,
        "POST",
        path,
        item.body,
        {"Content-Type": "application/json; charset=utf-8", "Stripe-Signature": item.header},
    )


# --------------------------------------------------------------------------------------------
# Load generators
# --------------------------------------------------------------------------------------------
@dataclass
class Result(common.Measured):
    """One measured run."""

    sent: int = 0  # requests started (wrk: request() calls; some may be cut off by the end of the run)
    fresh: int = 0  # 200 with "duplicate": false
    dups: int = 0  # 200 with "duplicate": true
    other_ok: int = 0  # 200 without a duplicate field (the bare endpoint)
    acked_ids: list[str] | None = None  # the Python generator knows which ids were acknowledged


WRK_LUA = r"""
-- Generated by bench/webhook_bench.py: POST pre-signed Stripe events, each once in order (the
-- pool wraps around only if the run outlasts it), classify every answer; done() (bench/common.py)
-- prints the counts as JSON.
local pool_path = @POOL@
local url_path = @PATH@
counters = {"sent", "fresh", "dups", "other_ok", "errors"}

function init(args)
  -- Requests are formatted once here, so request() costs the generator nothing during the run.
  reqs = {}
  local f = assert(io.open(pool_path, "rb"))
  while true do
    local head = f:read("*l")
    if not head then break end
    local len, sig = head:match("^(%d+) (%S+)$")
    reqs[#reqs + 1] = wrk.format("POST", url_path, {
      ["Content-Type"] = "application/json; charset=utf-8",
      ["Stripe-Signature"] = sig,
      ["User-Agent"] = "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    }, f:read(tonumber(len)))
  end
  f:close()
  n = #reqs
  local nthreads = tonumber(args[1] or "1")
  i = math.floor(tid * n / nthreads)
  sent, fresh, dups, other_ok, errors, problem = 0, 0, 0, 0, 0, ""
end

function request()
  i = i % n + 1
  sent = sent + 1
  return reqs[i]
end

function response(status, headers, body)
  if status ~= 200 then
    errors = errors + 1
    if problem == "" then problem = "HTTP " .. status .. ": " .. string.sub(body or "", 1, 160) end
  elseif string.find(body, '"duplicate":%s*false') then
    fresh = fresh + 1
  elseif string.find(body, '"duplicate":%s*true') then
    dups = dups + 1
  else
    other_ok = other_ok + 1
  end
end
"""


class WrkLoad(common.Wrk):
    """wrk replaying pre-signed events from a file through a Lua script."""

    def __init__(self, wrk: str, threads: int = 1):
        super().__init__(wrk, WORK, threads)
        self.path = OURS_PATH

    def prepare(self, name: str, path: str, pool: list[Signed]) -> None:
        """Write the pool (`length signature` line, then the body) and the Lua script reading it."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        pool_file = self.workdir / f"pool-{name}.bin"
        with pool_file.open("wb") as fh:
            for item in pool:
                fh.write(f"{len(item.body)} {item.header}\n".encode())
                fh.write(item.body)
        self.write_script(
            name, WRK_LUA.replace("@POOL@", json.dumps(str(pool_file))).replace("@PATH@", json.dumps(path))
        )
        self.path = path

    def run(self, port: int, clients: int, seconds: float) -> Result:
        """Load `port` for `seconds` with `clients` connections."""
        d, cpu = self.run_script(port, self.path, clients, seconds)
        return Result(
            sent=d["sent"],
            completed=d["completed"],
            seconds=d["duration_us"] / 1e6,
            fresh=d["fresh"],
            dups=d["dups"],
            other_ok=d["other_ok"],
            errors=d["errors"] + d["socket_errors"],
            p50_ms=d["p50_us"] / 1000,
            p99_ms=d["p99_us"] / 1000,
            generator_cpu=cpu,
            first_problem=d["first_problem"],
            details={"max_ms": d["max_us"] / 1000, "socket_errors": d["socket_errors"]},
        )


class PythonLoad:
    """An asyncio generator in this process (when wrk is unavailable): costlier, but knows each acked id."""

    def __init__(self) -> None:
        self.wire: list[tuple[str, bytes]] = []

    def prepare(self, name: str, path: str, pool: list[Signed]) -> None:
        """Render every request to bytes once, outside the measured time."""
        self.wire = [
            (
                s.id,
                (
                    f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n"
                    f"Content-Type: application/json; charset=utf-8\r\nStripe-Signature: {s.header}\r\n"
                    f"Content-Length: {len(s.body)}\r\n\r\n"
                ).encode()
                + s.body,
            )
            for s in pool
        ]

    def run(self, port: int, clients: int, seconds: float) -> Result:
        """Load `port` for `seconds` with `clients` connections; in-flight requests finish (no cut-off)."""
        acked: list[str] = []
        wire, result = self.wire, Result(acked_ids=acked)
        counter = itertools.count()

        def next_request() -> tuple[str, bytes]:
            result.sent += 1
            return wire[next(counter) % len(wire)]

        def answered(event_id: str, status: int, body: bytes) -> None:
            if status != 200:
                result.errors += 1
                result.first_problem = result.first_problem or f"HTTP {status}: {body[:160]!r}"
            elif b'"duplicate":false' in body:
                result.fresh += 1
                acked.append(event_id)
            elif b'"duplicate":true' in body:
                result.dups += 1
            else:
                result.other_ok += 1
                acked.append(event_id)

        return common.drive(port, clients, seconds, next_request, answered, result)


Load = WrkLoad | PythonLoad


# --------------------------------------------------------------------------------------------
# Phases
# --------------------------------------------------------------------------------------------
def measured(load: Load, server: common.Server, clients: int, seconds: float) -> Result:
    """One measured run with CPU accounting around it (Postgres: our database's backends only)."""
    return common.measure_cpu(server, lambda: load.run(server.port, clients, seconds), database=DB_NAME)


def pool_size(warm: Result, seconds: float) -> int:
    """Bodies enough for the measured run at 1.5× the warm-up rate (each sent once)."""
    rate = warm.completed / warm.seconds if warm.seconds else 0.0
    rate = max(rate, 2500.0)  # a short warm-up can underestimate: bodies are cheap, a repeat is not
    return min(MAX_POOL, int(rate * seconds * 1.5) + 5000)


def warm_up(
    server: common.Server, load: Load, factory: EventFactory, name: str, path: str, rate: int, args: argparse.Namespace
) -> Result:
    """A warm-up run on its own new events, enough for `rate` req/s (an empty Result with --warmup 0)."""
    if not args.warmup:
        return Result()
    load.prepare(name, path, factory.signed("w", 0, int(args.warmup * rate) + 2000, WEBHOOK_SECRET))
    return load.run(server.port, args.clients, args.warmup)


@dataclass
class Ours:
    """What the run on our app produced."""

    new: Result
    dup: Result
    measured_pool: list[Signed]


def run_ours(server: common.Server, load: Load, factory: EventFactory, args: argparse.Namespace) -> Ours:
    """Checks, then new events (warm-up + measured), then duplicates (warm-up + measured)."""
    check = factory.signed("c", 0, 3, WEBHOOK_SECRET)
    status, body = post_event(server.port, OURS_PATH, check[0])
    if status != 200 or b'"duplicate":false' not in body:
        raise RuntimeError(f"ours: a signed event answered {status}: {body[:300]!r}; log:\n{server.log_tail()}")
    status, body = post_event(server.port, OURS_PATH, check[0])
    if status != 200 or b'"duplicate":true' not in body:
        raise RuntimeError(f"ours: a redelivered event answered {status}: {body[:300]!r}")
    forged = Signed(check[1].id, sign(check[1].id, check[1].body, "whsec_wrong").header, check[1].body)
    status, body = post_event(server.port, OURS_PATH, forged)
    if status != 400:  # the benchmark must measure the verifying path, not a misconfigured one
        raise RuntimeError(f"ours: a wrongly signed event answered {status}, not 400: {body[:300]!r}")

    # New events: every body distinct and signed moments before it is sent.
    common.wait_quiet(args.quiet_wait, "new events")
    warm = warm_up(server, load, factory, "ours-warm", OURS_PATH, 6000, args)
    pool = factory.signed("m", 0, pool_size(warm, args.seconds), WEBHOOK_SECRET)
    load.prepare("ours-new", OURS_PATH, pool)
    new = measured(load, server, args.clients, args.seconds)
    new.details.update(pool=len(pool), wrapped=new.sent > len(pool), warm=warm.completed)

    # Duplicates: events stored above, re-signed now as Stripe re-signs a redelivery.
    ids = stored_ids(server.env["DATABASE_URL"], MEASURED_PREFIX, 200_000)
    if not ids:
        raise RuntimeError("no new event was stored; nothing to re-send as a duplicate")
    by_index = {factory.index(i): i for i in ids}
    dup_pool = [sign(i, pool[n].body, WEBHOOK_SECRET) for n, i in sorted(by_index.items())]
    load.prepare("ours-dup", OURS_PATH, dup_pool)  # wraps around: every request is a duplicate anyway
    common.wait_quiet(args.quiet_wait, "duplicates")
    if args.warmup:
        load.run(server.port, args.clients, args.warmup)
    dup = measured(load, server, args.clients, args.seconds)
    dup.details.update(pool=len(dup_pool))
    for r in (new, dup):
        r.details["log_problems"] = server.log_problems()
    return Ours(new, dup, pool)


def run_bare(
    server: common.Server, load: Load, factory: EventFactory, pool: list[Signed], args: argparse.Namespace
) -> Result:
    """The same bodies (and headers) to the bare endpoint: warm-up bodies, then the measured ones."""
    status, body = post_event(server.port, BARE_PATH, factory.signed("c", 0, 1, WEBHOOK_SECRET)[0])
    if status != 200:
        raise RuntimeError(f"bare: a POST answered {status}: {body[:300]!r}; log:\n{server.log_tail()}")
    common.wait_quiet(args.quiet_wait, "bare")
    warm = warm_up(server, load, factory, "bare-warm", BARE_PATH, 8000, args)
    want = pool_size(warm, args.seconds)
    if want > len(pool):  # the bare endpoint is faster: more of the same kind of bodies, never a repeat
        pool = pool + factory.signed("m", len(pool), want - len(pool), WEBHOOK_SECRET)
    load.prepare("bare", BARE_PATH, pool)
    result = measured(load, server, args.clients, args.seconds)
    result.details.update(pool=len(pool), wrapped=result.sent > len(pool), log_problems=server.log_problems())
    return result


# --------------------------------------------------------------------------------------------
# Durability: acknowledged ⇒ stored
# --------------------------------------------------------------------------------------------
def durability(url: str, table: str, r: Result) -> tuple[bool, str]:
    """Check every acknowledged new event of the measured run is stored; say how it was checked."""
    acked = r.fresh if table == "stripe_events" else r.other_ok
    stored = count_stored(url, table, MEASURED_PREFIX)
    if r.acked_ids is not None:  # the Python generator knows the ids and lets in-flight requests finish
        missing = missing_ids(url, table, r.acked_ids)
        ok = missing == 0 and stored == acked
        return ok, f"{acked:,} acknowledged, {stored:,} stored, {missing} acknowledged but missing"
    # wrk cannot tie an answer to its request, and stops with requests in flight: those may be
    # stored without being acknowledged. So: acked <= stored <= sent, and stored - acked <= clients.
    in_flight = stored - acked
    ok = acked <= stored <= r.sent and in_flight <= r.sent - r.completed
    return ok, (
        f"{acked:,} acknowledged, {stored:,} stored ({in_flight} stored while in flight at the cut-off; "
        f"{r.sent - r.completed} requests were cut off)"
    )


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------
def _row(label: str, cells: list[str]) -> str:
    return common.row(label, cells, 24)


def report(
    ours: Ours,
    bare: Result,
    checks: list[tuple[str, bool, str]],
    args: argparse.Namespace,
    generator: str,
    factory: EventFactory,
) -> None:
    """The table, the setting, and the verdict on the goal."""
    new, dup = ours.new, ours.dup
    wrong = {"new events": new.dups, "duplicates": dup.fresh, "bare store": 0}
    print()
    print(_row("", ["req/s", "p50 ms", "p99 ms", "errors", "wrong"]))
    for label, r in (("ours: new events", new), ("ours: duplicates", dup), ("bare store", bare)):
        print(
            _row(
                label,
                [
                    f"{r.rps:,.0f}",
                    f"{r.p50_ms:.1f}",
                    f"{r.p99_ms:.1f}",
                    f"{r.errors:,}",
                    f"{wrong[label.removeprefix('ours: ')]:,}",
                ],
            )
        )
    ratio = new.rps / bare.rps if bare.rps else 0.0
    print(
        _row(
            "ratio ours-new / bare",
            [
                f"{ratio:.2f}",
                f"{new.p50_ms / bare.p50_ms:.2f}" if bare.p50_ms else "—",
                f"{new.p99_ms / bare.p99_ms:.2f}" if bare.p99_ms else "—",
                "",
                "",
            ],
        )
    )
    print("(wrong: a 200 saying duplicate when new was expected, or new when a duplicate was expected)")
    print()
    workers = f"{args.workers} {args.worker_class}" + (
        f" × {args.threads} threads" if args.worker_class == "gthread" else ""
    )
    print(f"servers    gunicorn, {workers} workers each app, one app at a time, access log off")
    print(
        f"load       {args.clients} clients, {args.seconds:g} s measured after {args.warmup:g} s warm-up each, "
        f"generator {generator}, {os.cpu_count()} CPUs"
    )
    print(
        f"events     fixtures of {factory.mean_size / 1024:.1f} KB on average, {len(FIXTURE_NAMES)} kinds; "
        f"new pool {new.details['pool']:,}, duplicate pool {dup.details['pool']:,}, bare pool "
        f"{bare.details['pool']:,}"
    )
    noisy = []
    for label, r in (("new", new), ("dup", dup), ("bare", bare)):
        print(f"cpu {label:<6} {r.cpu_shares()} (100% = one core)")
        if r.noisy:
            noisy.append(label)
        if r.details.get("wrapped"):
            print(f"WARNING    the {label} run outlasted its pool of bodies: some were sent twice")
        common.print_problems(label, r, WORK / "logs")
    if noisy:
        print(
            f"WARNING    other processes used CPU during the {', '.join(noisy)} run(s): figures are low; "
            "rerun on a quiet machine"
        )
    for label, ok, text in checks:
        print(f"{label:<10} {'OK' if ok else 'FAILED'}: {text}")
    at = common.clients_note(args.clients, GOAL_CLIENTS)
    marks = [
        (f">= {GOAL_RPS:,} new events/s", new.rps >= GOAL_RPS, f"{new.rps:,.0f}/s"),
        (f"p99 < {GOAL_P99_MS:.0f} ms", new.p99_ms < GOAL_P99_MS, f"{new.p99_ms:.1f} ms"),
        (f">= {GOAL_RATIO:.0%} of bare", ratio >= GOAL_RATIO, f"{ratio:.0%}"),
        ("no errors", not (new.errors or dup.errors or bare.errors or new.dups or dup.fresh), ""),
    ]
    met = all(ok for _, ok, _ in marks)
    detail = "; ".join(f"{name}: {'yes' if ok else 'NO'}{f' ({v})' if v else ''}" for name, ok, v in marks)
    caveat = " (UNRELIABLE: other processes used CPU; rerun)" if noisy else ""
    print(f"goal       {'MET' if met else 'NOT MET'}{caveat}: {detail}{at}")


# --------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line flags, bounded so a run cannot take unbounded time."""
    p = argparse.ArgumentParser(prog="python -m bench.webhook_bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=32, help="concurrent connections (default 32)")
    p.add_argument(
        "--seconds", type=float, default=10, help=f"measured seconds per phase (default 10, max {MAX_SECONDS})"
    )
    # The Procfile's default (WEB_CONCURRENCY, else 4 = 2 × cores): a sync worker waits on Postgres for
    # part of each request, so two per core keep both cores busy. 6 gave ≈ 5 % more new events/s
    # (same ratio to bare) but slows lookups; the bench measures what production runs.
    p.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("WEB_CONCURRENCY") or 4),
        help="gunicorn workers per app (default $WEB_CONCURRENCY or 4, as the Procfile)",
    )
    p.add_argument(
        "--worker-class",
        choices=["sync", "gthread"],
        default="sync",
        help="gunicorn worker class for both apps (default sync, as the Procfile runs it)",
    )
    p.add_argument("--threads", type=int, default=4, help="threads per gthread worker (default 4)")
    p.add_argument("--warmup", type=float, default=2, help="warm-up seconds before each phase (default 2)")
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=120,
        help="before each phase, wait up to this many seconds for other CPU load to stop (default 120, 0: don't)",
    )
    p.add_argument(
        "--generator",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="load generator: wrk (installed with apt-get when missing) or the Python fallback",
    )
    args = p.parse_args(argv)
    common.check_args(p, args, MAX_SECONDS)
    if not 0 <= args.quiet_wait <= 300:
        p.error("--quiet-wait must be in [0, 300]")
    if not 1 <= args.threads <= 64:
        p.error("--threads must be between 1 and 64")
    return args


def gunicorn(name: str, app: str, env: dict[str, str], args: argparse.Namespace) -> common.Server:
    """A server for `app` with the workers the flags ask for (the same for both apps)."""
    return common.Server(
        name,
        app,
        common.free_port(),
        args.workers,
        env,
        WORK / "logs" / f"{name}.log",
        worker_class=args.worker_class,
        threads=args.threads,
        problem_marks=PROBLEM_MARKS,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 unless something failed (timings never fail the run)."""
    args = parse_args(argv)
    common.unwind_on_sigterm()
    started = time.perf_counter()
    load: Load | None
    load, generator = common.choose_load(args.generator, WrkLoad, PythonLoad, "1 thread")
    if load is None:
        print(generator, file=sys.stderr)
        return 2
    print(f"generator: {generator}", flush=True)
    for line in common.foreign_load():
        print(f"WARNING: also running (figures may be low): {line}", flush=True)

    factory = EventFactory()
    try:
        server_url = embedded.start(common.DATA)  # shared with other benchmarks; stopped when the last one exits
        url = fresh_database(server_url)
        env = common.server_env(url, STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET, SLACK_SIGNING_SECRET="bench")
        ours_server = gunicorn("ours", "app:create_app()", env, args)
        bare_server = gunicorn("bare", "bench.bare_store:create_app()", env, args)
        phase = f"{args.warmup:g} s warm-up + {args.seconds:g} s"
        print(f"measuring our webhook: new events, then duplicates ({phase} each) …", flush=True)
        with common.serving(ours_server, "/readyz"):
            ours = run_ours(ours_server, load, factory, args)
        print(f"measuring the bare store ({phase}) …", flush=True)
        with common.serving(bare_server, "/healthz"):
            bare = run_bare(bare_server, load, factory, ours.measured_pool, args)
        checks = [
            ("durability", *durability(url, "stripe_events", ours.new)),
            ("bare", *durability(url, "bare_events", bare)),
        ]
    except KeyboardInterrupt:
        print("\ninterrupted; servers stopped", file=sys.stderr)
        return 130
    except (RuntimeError, psycopg.Error) as exc:
        print(f"benchmark could not run: {exc}", file=sys.stderr)
        return 1
    finally:
        for pool_file in WORK.glob("pool-*.bin"):  # up to ~1 GB of signed bodies; the logs stay
            pool_file.unlink(missing_ok=True)
    report(ours, bare, checks, args, generator, factory)
    print(f"total      {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
