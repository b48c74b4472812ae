"""API benchmark: `GET /api/v1/refund-requests` under gunicorn over a store of 1,000,000 refund requests.

    python -m bench.api_bench [--requests 1000000] [--clients 32] [--seconds 10] [--workers 4]

Seeds (or reuses) a database of refund requests in the embedded Postgres under .data/bench (bulk-loaded
in SQL with generate_series), makes an API key, then measures one after the other, with the same client
settings and a warm-up each:

1. bare: `GET /bare` of bench/bare_api.py, which only authenticates the key (the same statement the API
   runs: find the key by its hash, charge its rate bucket) and answers a fixed JSON;
2. page 1: the API's first page of a filtered list (one requester's succeeded requests, 50 a page);
3. page 500: the same list from the cursor that starts its 500th page (rows 24,951–25,000).

Every answer must be 200 with the expected rows. Prints req/s and p50/p99 of each, the CPU each part
used, the query plans, and ends with the verdict on the goal: p99 under 50 ms on both pages at 32
clients, and page 500 no slower than page 1.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlencode

import psycopg

from bench import common
from domain.history import Filter, Position, decode_cursor, encode_cursor
from services.api_keys import hash_key
from store import embedded, history, migrate

WORK = common.DATA / "api"
DB_NAME = "refund_desk_api_bench"
KEY = "rdk_bench-api-key-0123456789abcdefghijklmnopqrstuv"
SIGNING_SECRET = "bench-signing-secret-0123456789abcdef"
PER_USER = 50_000  # requests per requester: 20 requesters at 1,000,000, so the list has ~30,000 rows
LIMIT = 50
DEEP_PAGE = 500
REQUESTER = "U0BENCH000"
STATUS = "succeeded"
GOAL_P99_MS = 50.0
GOAL_CLIENTS = 32
SLOWER_TOLERANCE = 1.10  # "no slower": within 10 %, the run-to-run noise of one machine
MAX_SECONDS = 60
SEED_VERSION = 1

# Request i: requester i % users; status by (i / users) % 10, so every requester has them all (six in ten
# succeeded, then pending, rejected, failed, expired); one a minute from 2024-01-01, so 1,000,000 span
# about two years. A succeeded request has its refund id, a decided one its approver, as the table's
# CHECKs want. `%%` is psycopg's escaped `%`.
SEED_REQUESTS = """
INSERT INTO refund_requests (payment_id, amount, currency, status, requested_by, requested_via, approvals,
                             approvals_needed, decided_by, decided_at, reject_reason, idempotency_key,
                             stripe_refund_id, failure_message, created_at, updated_at, expires_at)
SELECT 'pi_R' || lpad(i::text, 12, '0'),
       100 + (i * 7919 %% 50000) * 10,
       (ARRAY['usd', 'eur', 'jpy', 'kwd'])[i %% 4 + 1],
       s.status,
       'U0BENCH' || lpad((i %% %(users)s)::text, 3, '0'),
       CASE WHEN i %% 7 = 0 THEN 'api' ELSE 'slash_command' END,
       CASE WHEN s.status IN ('succeeded', 'failed') THEN ARRAY['U0APPROVER'] ELSE '{}'::text[] END,
       1,
       CASE WHEN s.status IN ('succeeded', 'failed', 'rejected') THEN 'U0APPROVER' END,
       CASE WHEN s.status IN ('succeeded', 'failed', 'rejected') THEN s.at + interval '1 hour' END,
       CASE WHEN s.status = 'rejected' THEN 'not eligible' END,
       'bench-request-' || i,
       CASE WHEN s.status = 'succeeded' THEN 're_R' || lpad(i::text, 12, '0') END,
       CASE WHEN s.status = 'failed' THEN 'expired_or_canceled_card' END,
       s.at, s.at + interval '2 hours', s.at + interval '7 days'
  FROM (
    SELECT i,
           timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute' AS at,
           CASE WHEN i / %(users)s %% 10 < 6 THEN 'succeeded' WHEN i / %(users)s %% 10 = 6 THEN 'pending'
                WHEN i / %(users)s %% 10 = 7 THEN 'rejected' WHEN i / %(users)s %% 10 = 8 THEN 'failed'
                ELSE 'expired' END AS status
      FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS i
  ) s
"""

_META = """
CREATE TABLE IF NOT EXISTS bench_seed (
    requests bigint NOT NULL, version text NOT NULL, seconds double precision NOT NULL,
    seeded_at timestamptz NOT NULL DEFAULT now()
)
"""

KEY_ROW = """
INSERT INTO api_keys (name, key_hash, prefix, scopes, created_by, created_at)
VALUES ('bench', %(hash)s, %(prefix)s, ARRAY['read'], 'bench', now())
ON CONFLICT DO NOTHING
"""


@dataclass(frozen=True)
class Store:
    """The seeded database and what it holds."""

    url: str
    requests: int
    matching: int  # rows the benchmarked filter matches
    seed_seconds: float
    reused: bool


def users(count: int) -> int:
    """How many requesters share `count` requests (each has about PER_USER)."""
    return max(1, count // PER_USER)


def _seed_version() -> str:
    schema = "".join(m.sql for m in migrate.available())
    return hashlib.sha256(f"{SEED_VERSION}:{PER_USER}:{schema}:{SEED_REQUESTS}".encode()).hexdigest()[:16]


def _stored_seed(url: str) -> tuple | None:
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            exists = conn.execute("SELECT to_regclass('bench_seed') IS NOT NULL").fetchone()
            if not exists or not exists[0]:
                return None
            return conn.execute("SELECT requests, version, seconds FROM bench_seed").fetchone()
    except psycopg.OperationalError:
        return None


def _load(url: str, count: int) -> None:
    """Insert `count` requests in batches over two connections (both cores)."""
    batch = 100_000
    queue = [(lo, min(lo + batch - 1, count)) for lo in range(1, count + 1, batch)]
    lock = threading.Lock()
    failures: list[BaseException] = []

    def work() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SET synchronous_commit = off")  # a bulk load: durability of each batch is moot
            while True:
                with lock:
                    if not queue or failures:
                        return
                    lo, hi = queue.pop(0)
                try:
                    conn.execute(SEED_REQUESTS, {"lo": lo, "hi": hi, "users": users(count)})
                except BaseException as exc:  # re-raised in the caller's thread
                    failures.append(exc)
                    return

    threads = [threading.Thread(target=work, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise failures[0]


def prepare_store(server_url: str, count: int) -> Store:
    """The bench database with `count` refund requests (reused when a matching seed is stored) and our key."""
    url = common.database_url(server_url, DB_NAME)
    version = _seed_version()
    found = _stored_seed(url)
    reused = bool(found and found[0] == count and found[1] == version)
    if reused:
        seconds = float(found[2])
    else:
        print(f"seeding {count:,} refund requests into {DB_NAME} (reused by later runs) …", flush=True)
        started = time.perf_counter()
        common.recreate_database(server_url, DB_NAME)
        _load(url, count)
        with psycopg.connect(url, autocommit=True) as conn:
            # As a long-lived table would be: hint bits and visibility map set, statistics for the planner.
            conn.execute("VACUUM (FREEZE, ANALYZE) refund_requests")
            seconds = time.perf_counter() - started
            conn.execute(_META)
            conn.execute(
                "INSERT INTO bench_seed (requests, version, seconds) VALUES (%s, %s, %s)", (count, version, seconds)
            )
        print(f"seeded in {seconds:.1f} s", flush=True)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(KEY_ROW, {"hash": hash_key(KEY), "prefix": KEY[:10]})
        matching = conn.execute(
            "SELECT count(*) FROM refund_requests WHERE requested_by = %s AND status = %s", (REQUESTER, STATUS)
        ).fetchone()[0]
    return Store(url, count, matching, seconds, reused)


def deep_cursor(url: str, page: int) -> tuple[str, int]:
    """The cursor that starts page `page` of the benchmarked list (and the first request number on it)."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT created_at, id FROM refund_requests WHERE requested_by = %s AND status = %s"
            " ORDER BY created_at DESC, id DESC OFFSET %s LIMIT 2",
            (REQUESTER, STATUS, (page - 1) * LIMIT - 1),
        ).fetchall()
    if len(rows) < 2:
        raise RuntimeError(f"the store has fewer than {page} pages of {LIMIT}: seed more requests")
    (at, last_id), (_, first_id) = rows
    return encode_cursor(Position(at, str(last_id))), first_id


def plans(url: str, cursor_at: str) -> list[str]:
    """The index each page's query uses and how many rows it reads (EXPLAIN ANALYZE, once)."""
    out = []
    with psycopg.connect(url, autocommit=True) as conn:
        for label, after in (("page 1", None), (f"page {DEEP_PAGE}", decode_cursor(cursor_at))):
            sql, params = history.requests_query(Filter((STATUS,), requested_by=REQUESTER), limit=LIMIT, after=after)
            plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, params)
            node = plan.fetchone()[0][0]
            scan = node["Plan"]
            while scan.get("Plans") and "Index Name" not in scan:
                scan = scan["Plans"][0]
            out.append(
                f"{label}: {scan['Node Type']} on {scan.get('Index Name', scan.get('Relation Name', '?'))}, "
                f"{scan.get('Actual Rows', 0):.0f} rows, {scan.get('Shared Hit Blocks', 0)} buffers hit, "
                f"{node['Execution Time']:.2f} ms"
            )
    return out


# --------------------------------------------------------------------------------------------
# Load
# --------------------------------------------------------------------------------------------
@dataclass
class Result(common.Measured):
    """One measured run."""

    misses: int = 0  # 200 without the expected first row


WRK_LUA = r"""
-- Generated by bench/api_bench.py: GET one path with the API key, check every answer.
local path = %(path)s
local expect = %(expect)s
counters = {"errors", "misses"}

function init(args)
  errors, misses, problem = 0, 0, ""
end

function request()
  return wrk.format("GET", path, {["Authorization"] = "Bearer " .. %(key)s})
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
    """wrk sending the same authenticated GET, checking each answer."""

    def prepare(self, name: str, path: str, expect: str) -> None:
        """Write the Lua script for this target."""
        quoted = {k: json.dumps(v) for k, v in {"path": path, "expect": expect, "key": KEY}.items()}
        self.write_script(name, WRK_LUA % quoted)
        self.path = path

    def run(self, port: int, clients: int, seconds: float) -> Result:
        """Load `port` for `seconds` with `clients` connections."""
        data, cpu = self.run_script(port, self.path, clients, seconds)
        return Result(
            completed=data["completed"],
            seconds=data["duration_us"] / 1e6,
            errors=data["errors"] + data["socket_errors"],
            misses=data["misses"],
            p50_ms=data["p50_us"] / 1000,
            p99_ms=data["p99_us"] / 1000,
            generator_cpu=cpu,
            first_problem=data["first_problem"],
        )


class PythonLoad:
    """The in-process asyncio generator (when wrk is unavailable; it takes more CPU)."""

    def prepare(self, name: str, path: str, expect: str) -> None:
        """Render the request once."""
        self.path, self.expect = path, expect.encode()

    def run(self, port: int, clients: int, seconds: float) -> Result:
        """Load `port` for `seconds` with `clients` keep-alive connections."""
        wire = (
            f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {KEY}\r\n"
            "Connection: keep-alive\r\n\r\n"
        ).encode()
        result = Result()

        def answered(_: None, status: int, body: bytes) -> None:
            if status != 200:
                result.errors += 1
                result.first_problem = result.first_problem or f"HTTP {status}: {body[:200]!r}"
            elif self.expect and self.expect not in body:
                result.misses += 1
                result.first_problem = result.first_problem or f"miss: {body[:200]!r}"

        return common.drive(port, clients, seconds, lambda: (None, wire), answered, result)


Load = WrkLoad | PythonLoad


def measure(server: common.Server, load: Load, path: str, expect: str, args: argparse.Namespace, name: str) -> Result:
    """Check one answer, warm up, measure; the server keeps running (the caller stops it)."""
    status, body = common.http(server.port, "GET", path, headers={"Authorization": f"Bearer {KEY}"})
    if status != 200 or expect.encode() not in body:
        raise RuntimeError(f"{name}: GET {path} answered {status}: {body[:300]!r}\n{server.log_tail()}")
    load.prepare(name, path, expect)
    common.wait_quiet(args.quiet_wait, name)
    if args.warmup:
        load.run(server.port, args.clients, args.warmup)
    result = common.measure_cpu(server, lambda: load.run(server.port, args.clients, args.seconds), database=DB_NAME)
    result.details["log_problems"] = server.log_problems()
    return result


def _merged(runs: list[Result]) -> Result:
    """Two phases of one page as one result: counts and CPU added, percentiles the mean of the two."""
    first, second = runs
    return Result(
        completed=first.completed + second.completed,
        seconds=first.seconds + second.seconds,
        errors=first.errors + second.errors,
        misses=first.misses + second.misses,
        p50_ms=(first.p50_ms + second.p50_ms) / 2,
        p99_ms=(first.p99_ms + second.p99_ms) / 2,
        generator_cpu=first.generator_cpu + second.generator_cpu,
        server_cpu=first.server_cpu + second.server_cpu,
        postgres_cpu=first.postgres_cpu + second.postgres_cpu,
        machine_cpu=first.machine_cpu + second.machine_cpu,
        first_problem=first.first_problem or second.first_problem,
        details={**second.details, **first.details, "phases_p99_ms": [first.p99_ms, second.p99_ms]},
    )


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------
def _row(label: str, cells: list[str]) -> str:
    return common.row(label, cells, 30)


def report(results: dict[str, Result], store: Store, args: argparse.Namespace, generator: str, plan: list[str]) -> None:
    """The table, the setting, the plans, and the verdict on the goal (the last line)."""
    print()
    print(_row("", ["req/s", "p50 ms", "p99 ms", "errors", "misses"]))
    for label, r in results.items():
        print(_row(label, [f"{r.rps:,.0f}", f"{r.p50_ms:.1f}", f"{r.p99_ms:.1f}", f"{r.errors:,}", f"{r.misses:,}"]))
    bare, first, deep = results.values()
    print(_row("ratio page 1 / bare", [f"{first.rps / bare.rps:.2f}" if bare.rps else "—", "", "", "", ""]))
    print(
        _row(f"ratio page {DEEP_PAGE} / page 1", [f"{deep.rps / first.rps:.2f}" if first.rps else "—", "", "", "", ""])
    )
    print()
    seeded = (
        f"reused; seeded earlier in {store.seed_seconds:.0f} s"
        if store.reused
        else f"seeded now in {store.seed_seconds:.0f} s"
    )
    print(
        f"store      {store.requests:,} refund requests ({seeded}); the list: requested_by={REQUESTER}, "
        f"status={STATUS}: {store.matching:,} rows, {LIMIT} a page"
    )
    print(f"setup      {os.cpu_count()} CPUs; gunicorn, {args.workers} sync workers; one key for every request")
    print(
        f"load       {args.clients} clients, {args.seconds:g} s measured after {args.warmup:g} s warm-up; "
        f"generator: {generator}"
    )
    for line in plan:
        print(f"plan       {line}")
    noisy = []
    for label, r in results.items():
        per = 1000 / r.completed if r.completed else 0.0
        print(
            f"cpu        {label}: {r.cpu_shares()} (of one core); per request {r.server_cpu * per:.2f} ms gunicorn "
            f"+ {r.postgres_cpu * per:.2f} ms postgres"
        )
        if r.noisy:
            noisy.append(label)
        common.print_problems(label, r, WORK / "logs")
    if noisy:
        print(
            f"WARNING    other processes took over 15% of a core while measuring {', '.join(noisy)}; "
            "rerun on a quiet machine"
        )
    clean = all(not r.errors and not r.misses for r in (first, deep))
    fast = first.p99_ms < GOAL_P99_MS and deep.p99_ms < GOAL_P99_MS
    flat = deep.p99_ms <= first.p99_ms * SLOWER_TOLERANCE and deep.rps >= first.rps / SLOWER_TOLERANCE
    met = clean and fast and flat
    print(
        f"goal       p99 < {GOAL_P99_MS:.0f} ms on page 1 and page {DEEP_PAGE} at {GOAL_CLIENTS} clients, "
        f"page {DEEP_PAGE} no slower than page 1 (within {SLOWER_TOLERANCE - 1:.0%}): {'MET' if met else 'NOT MET'} "
        f"(p99 {first.p99_ms:.1f} / {deep.p99_ms:.1f} ms, {first.rps:,.0f} / {deep.rps:,.0f} req/s)"
        f"{common.clients_note(args.clients, GOAL_CLIENTS)}"
        f"{'; UNRELIABLE: other processes were busy' if noisy else ''}"
    )


# --------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line flags, bounded so a run cannot take unbounded time."""
    p = argparse.ArgumentParser(prog="python -m bench.api_bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=1_000_000, help="refund requests in the store (default 1,000,000)")
    p.add_argument("--clients", type=int, default=32, help="concurrent connections (default 32)")
    p.add_argument(
        "--seconds", type=float, default=10, help=f"measured seconds per target (default 10, max {MAX_SECONDS})"
    )
    p.add_argument(
        "--workers", type=int, default=4, help="gunicorn sync workers (default 4 = 2 × cores, as the Procfile)"
    )
    p.add_argument("--warmup", type=float, default=2, help="warm-up seconds before each measurement (default 2)")
    p.add_argument("--quiet-wait", type=float, default=60, help="seconds to wait for an idle machine before each phase")
    p.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto", help="load generator")
    args = p.parse_args(argv)
    common.check_args(p, args, MAX_SECONDS)
    if not 50_000 <= args.requests <= 5_000_000:
        p.error("--requests must be between 50,000 and 5,000,000 (page 500 needs 25,000 matching rows)")
    if not 0 <= args.quiet_wait <= 600:
        p.error("--quiet-wait must be in [0, 600]")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 unless something failed to start (timings never fail the run)."""
    args = parse_args(argv)
    common.unwind_on_sigterm()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    started = time.perf_counter()
    load, generator = common.choose_load(
        args.generator, lambda wrk: WrkLoad(wrk, WORK / "wrk"), PythonLoad, "1 thread, Lua, one authenticated GET"
    )
    if load is None:
        print(generator, file=sys.stderr)
        return 2
    print(f"generator: {generator}", flush=True)
    try:
        server_url = embedded.start(common.DATA)
        store = prepare_store(server_url, args.requests)
        print(f"store: {store.requests:,} refund requests ({'reused' if store.reused else 'seeded'})", flush=True)
        cursor, first_on_deep = deep_cursor(store.url, DEEP_PAGE)
        query = {"status": STATUS, "requested_by": REQUESTER, "limit": str(LIMIT)}
        page1 = "/api/v1/refund-requests?" + urlencode(query)
        deep = "/api/v1/refund-requests?" + urlencode({**query, "cursor": cursor})
        with psycopg.connect(store.url, autocommit=True) as conn:
            first_on_1 = conn.execute(
                "SELECT id FROM refund_requests WHERE requested_by = %s AND status = %s"
                " ORDER BY created_at DESC, id DESC LIMIT 1",
                (REQUESTER, STATUS),
            ).fetchone()[0]
        # Never rate-limited here: the figure is the list's cost, the bucket is still charged on each request.
        env = common.server_env(
            store.url,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            STRIPE_WEBHOOK_SECRET="whsec_bench",
            API_RATE_LIMIT="1000000/s burst 1000000",
        )
        logs = WORK / "logs"
        results: dict[str, Result] = {}
        bare = common.Server(
            "bare", "bench.bare_api:create_app()", common.free_port(), args.workers, env, logs / "bare.log"
        )
        with common.serving(bare, "/healthz"):
            print(
                f"measuring the bare authenticated endpoint ({args.warmup:g} s warm-up + {args.seconds:g} s) …",
                flush=True,
            )
            results["bare authenticated endpoint"] = measure(bare, load, "/bare", '"data"', args, "bare")
        ours = common.Server("ours", "app:create_app()", common.free_port(), args.workers, env, logs / "ours.log")
        with common.serving(ours, "/readyz"):
            # Each page twice, in the order 1, 500, 500, 1: whatever drifts during a run (measured: the
            # phase that comes second has a p99 about 12 % higher, whichever page it is) weighs on both.
            runs: dict[str, list[Result]] = {"page1": [], "deep": []}
            for name in ("page1", "deep", "deep", "page1"):
                path, expect = (page1, first_on_1) if name == "page1" else (deep, first_on_deep)
                print(f"measuring {name} ({args.warmup:g} s warm-up + {args.seconds:g} s) …", flush=True)
                runs[name].append(measure(ours, load, path, f'"number":{expect},', args, name))
            results["page 1 (filtered)"] = _merged(runs["page1"])
            results[f"page {DEEP_PAGE} (cursor)"] = _merged(runs["deep"])
        plan = plans(store.url, cursor)
    except KeyboardInterrupt:
        print("\ninterrupted; servers stopped", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"benchmark could not run: {exc}", file=sys.stderr)
        return 1
    print(f"total      {time.perf_counter() - started:.0f} s")
    report(results, store, args, generator, plan)
    return 0


if __name__ == "__main__":
    sys.exit(main())
