"""Worker benchmark: how fast the `worker` applies a backlog, beside how fast the `web` process stores it.

    python -m bench.worker_bench [--events 50000] [--seconds 10] [--batch 50] [--workers 4]

Starts the embedded Postgres under .data/bench, then, one phase after the other, each on a freshly
created database refund_desk_worker_bench:

1. web: `POST /webhooks/stripe` on our app under gunicorn (the webhook benchmark's own code:
   bench/webhook_bench.py's load generators, signing and CPU accounting), with events of the usual
   mix (bench/stream.py), each new and signed moments before the run: new events stored per second.
2. drain, one worker process, then two: the inbox filled with `--events` events of the same mix in
   one transaction while `refund-desk worker` processes (the real ones: every job, Slack delivered
   to a local stand-in) wait; the time from the commit until nothing is due gives events applied
   per second, and the workers' and Postgres's CPU divided by the events, CPU per event.
3. dispute latency: the inbox filled with `--events` routine events (payments), one worker process
   draining them and the web process serving; `--disputes` charge.dispute.created events are then
   POSTed one at a time, and for each the time from its 200 to its alert being in the Slack outbox
   (polled every 5 ms) is the latency.

Prints events per second, CPU per event and the latencies, and a last line starting `goal` saying
MET or NOT MET: on the 2-core machine, the faster worker configuration applies at least 80 % of
the web's storing rate, and every dispute's alert is queued within 2 s of its 200. Reads nothing
outside the repository; timings never fail the run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from bench import common, webhook_bench
from bench.stream import Event, Stream
from domain.priority import event_priority
from standins.slack_api import SlackStandIn
from store import embedded
from store import events as store_events

WORK = common.DATA / "worker"
DB_NAME = "refund_desk_worker_bench"
SECRET = webhook_bench.WEBHOOK_SECRET
GOAL_RATIO = 0.80
GOAL_LATENCY = 2.0
CHANNELS = {
    "APPROVALS_CHANNEL": "C0APPROVALS",
    "REFUNDS_FEED_CHANNEL": "C0REFUNDFEED",
    "DISPUTES_CHANNEL": "C0DISPUTES",
    "ALERTS_CHANNEL": "C0ALERTS",
}


# --------------------------------------------------------------------------------------------
# Phase 1: the web process storing the same kind of events
# --------------------------------------------------------------------------------------------
def signed(items: list[Event]) -> list[webhook_bench.Signed]:
    """Events signed now, as Stripe signs them (one timestamp: accepted for 300 s)."""
    stamp = int(time.time())
    return [webhook_bench.sign(e.id, e.body, SECRET, stamp) for e in items]


def measure_web(url: str, stream: Stream, args: argparse.Namespace, load: webhook_bench.Load) -> webhook_bench.Result:
    """New events stored per second by `app:create_app()` under gunicorn, with the webhook benchmark's generator."""
    env = common.server_env(url, STRIPE_WEBHOOK_SECRET=SECRET, SLACK_SIGNING_SECRET="bench")
    server = webhook_bench.gunicorn("web", "app:create_app()", env, args)
    server.log_path = WORK / "logs" / "web.log"
    with common.serving(server, "/readyz"):
        common.wait_quiet(args.quiet_wait, "the web phase")
        warm = webhook_bench.Result()
        if args.warmup:
            load.prepare("worker-web-warm", webhook_bench.OURS_PATH, signed(stream.events(12000, first=10**9)))
            warm = load.run(server.port, args.clients, args.warmup)
        pool = signed(stream.events(webhook_bench.pool_size(warm, args.seconds), first=2 * 10**9))
        load.prepare("worker-web", webhook_bench.OURS_PATH, pool)
        # Postgres CPU of this benchmark's database only (the server is shared with the other benchmarks).
        result = common.measure_cpu(server, lambda: load.run(server.port, args.clients, args.seconds), database=DB_NAME)
        result.details.update(pool=len(pool), wrapped=result.sent > len(pool), log_problems=server.log_problems())
    return result


# --------------------------------------------------------------------------------------------
# Phases 2 and 3: worker processes draining a backlog
# --------------------------------------------------------------------------------------------
@dataclass
class Drain:
    """One drain of the inbox."""

    workers: int
    events: int
    seconds: float = 0.0
    worker_cpu: float = 0.0
    postgres_cpu: float = 0.0
    machine_cpu: float = 0.0
    outcome: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Events applied per second."""
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms(self) -> float:
        """Worker + Postgres CPU per event, in ms."""
        return 1000 * (self.worker_cpu + self.postgres_cpu) / self.events if self.events else 0.0

    @property
    def noisy(self) -> bool:
        """Whether other processes took over 15 % of a core meanwhile."""
        other = self.machine_cpu - self.worker_cpu - self.postgres_cpu
        return other / (self.seconds or 1) > 0.15


def fill(url: str, items: list[Event]) -> psycopg.Connection:
    """Store the events in one open transaction (the caller commits: they appear at once)."""
    conn = psycopg.connect(url)
    params = [
        {
            "id": e.id,
            "type": e.type,
            "account": None,
            "api_version": "2020-08-27",
            "livemode": False,
            "created": json.loads(e.body)["created"],
            "payload": e.body.decode(),
            "source": "webhook",
            "priority": event_priority(e.type),
        }
        for e in items
    ]
    with conn.cursor() as cur:
        cur.executemany(store_events.RECORD, params)
    return conn


def due(url: str) -> int:
    """Events still waiting to be applied."""
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM stripe_events WHERE status IN ('pending', 'failed')").fetchone()[0]


def start_workers(count: int, env: dict[str, str], tag: str) -> list[subprocess.Popen]:
    """`refund-desk worker` processes, each in its own session (stopped in order at the end)."""
    (WORK / "logs").mkdir(parents=True, exist_ok=True)
    procs = []
    for i in range(count):
        with (WORK / "logs" / f"worker-{tag}-{i}.log").open("wb") as log:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "cli", "worker"],
                    cwd=common.ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    return procs


def stop_workers(procs: list[subprocess.Popen]) -> None:
    """SIGTERM (the worker's graceful stop), then SIGKILL if one lingers."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def wait_ready(procs: list[subprocess.Popen], settle: float = 3.0) -> None:
    """Until every worker is started and idle (its CPU stops growing)."""
    deadline = time.monotonic() + 60
    last = -1.0
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"a worker exited ({proc.returncode}); see {WORK / 'logs'}")
        time.sleep(settle / 3)
        used = sum(common.cpu_delta({}, common.tree_cpu(p.pid)) for p in procs)
        if used - last < 0.05 * len(procs):
            return
        last = used
    raise RuntimeError("the workers did not settle within 60 s")


def worker_env(url: str, slack: SlackStandIn, batch: int) -> dict[str, str]:
    """The worker's environment: ours only, Slack at the stand-in, Stripe at a port nobody listens on."""
    return common.server_env(
        url,
        SLACK_API_URL=slack.api_url,
        EVENT_BATCH_SIZE=str(batch),
        **CHANNELS,
    )


def drain(server_url: str, items: list[Event], workers: int, args: argparse.Namespace, slack: SlackStandIn) -> Drain:
    """Fill a fresh inbox while `workers` processes wait, commit, and time them until nothing is due."""
    url = common.recreate_database(server_url, DB_NAME)
    procs = start_workers(workers, worker_env(url, slack, args.batch), f"drain{workers}")
    result = Drain(workers, len(items))
    try:
        wait_ready(procs)
        conn = fill(url, items)
        common.wait_quiet(args.quiet_wait, f"draining with {workers} worker(s)")
        pg0 = common.tree_cpu(common.postmaster_pid(), database=DB_NAME)
        w0 = {p.pid: common.tree_cpu(p.pid) for p in procs}
        busy0 = common.machine_busy()
        conn.commit()
        started = time.perf_counter()
        conn.close()
        while due(url):
            time.sleep(0.2)
            if time.perf_counter() - started > 1200:
                raise RuntimeError("the workers did not drain the inbox within 20 minutes")
        result.seconds = time.perf_counter() - started
        result.machine_cpu = common.machine_busy() - busy0
        result.postgres_cpu = common.cpu_delta(pg0, common.tree_cpu(common.postmaster_pid(), database=DB_NAME))
        result.worker_cpu = sum(common.cpu_delta(w0[p.pid], common.tree_cpu(p.pid)) for p in procs)
        with psycopg.connect(url, autocommit=True) as check:
            result.outcome = dict(
                check.execute("SELECT status, count(*) FROM stripe_events GROUP BY status").fetchall()
            )
    finally:
        stop_workers(procs)
    return result


def dispute_latency(
    server_url: str, stream: Stream, args: argparse.Namespace, slack: SlackStandIn
) -> tuple[Drain, int]:
    """Disputes POSTed to the web while one worker drains `--events` routine events: 200 → alert queued."""
    url = common.recreate_database(server_url, DB_NAME)
    env = common.server_env(url, STRIPE_WEBHOOK_SECRET=SECRET, SLACK_SIGNING_SECRET="bench", **CHANNELS)
    server = webhook_bench.gunicorn("web-latency", "app:create_app()", env, args)
    server.log_path = WORK / "logs" / "web-latency.log"
    procs = start_workers(1, worker_env(url, slack, args.batch), "latency")
    result = Drain(1, args.events)
    try:
        with common.serving(server, "/readyz"):
            wait_ready(procs)
            conn = fill(url, stream.events(args.events, routine_only=True, first=3 * 10**9))
            conn.commit()
            conn.close()
            time.sleep(0.5)  # the worker into the backlog, nearly all of it still ahead
            with psycopg.connect(url, autocommit=True) as poll:
                for n in range(args.disputes):
                    ahead = poll.execute(
                        "SELECT count(*) FROM stripe_events WHERE status IN ('pending', 'failed')"
                    ).fetchone()[0]
                    event = stream.dispute(n)
                    item = signed([event])[0]
                    status, body = webhook_bench.post_event(server.port, webhook_bench.OURS_PATH, item)
                    acked = time.perf_counter()
                    if status != 200:
                        raise RuntimeError(f"the dispute answered {status}: {body[:200]!r}")
                    key = f"dispute:{json.loads(event.body)['data']['object']['id']}"
                    while not poll.execute("SELECT 1 FROM slack_outbox WHERE message_key = %s", (key,)).fetchone():
                        time.sleep(0.005)
                        if time.perf_counter() - acked > 120:
                            raise RuntimeError(f"no alert for {event.id} after 120 s")
                    result.latencies.append(time.perf_counter() - acked)
                    result.outcome[f"ahead of dispute {n + 1}"] = ahead
                    time.sleep(1.0)
            left = due(url)
    finally:
        stop_workers(procs)
    return result, left


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------
def report(
    web: webhook_bench.Result, drains: list[Drain], latency: Drain, left: int, args: argparse.Namespace, took: float
) -> None:
    """The table, the setting, the checks and the verdict."""
    web_cpu = 1000 * (web.server_cpu + web.postgres_cpu) / web.fresh if web.fresh else 0.0
    print()
    print(common.row("", ["events/s", "CPU ms/ev", "ratio", "seconds"], 34))
    print(
        common.row("web: stored (new events)", [f"{web.rps:,.0f}", f"{web_cpu:.2f}", "1.00", f"{web.seconds:.1f}"], 34)
    )
    for d in drains:
        label = f"worker: applied, {d.workers} process{'es' if d.workers > 1 else ''}"
        ratio = d.rate / web.rps if web.rps else 0.0
        print(common.row(label, [f"{d.rate:,.0f}", f"{d.cpu_ms:.2f}", f"{ratio:.2f}", f"{d.seconds:.1f}"], 34))
    lat = latency.latencies
    print()
    print(
        f"dispute 200 → alert queued, {len(lat)} disputes behind ≈{args.events:,} routine events, 1 worker: "
        f"median {statistics.median(lat):.3f} s, max {max(lat):.3f} s"
        if lat
        else "dispute latency: not measured"
    )
    print(
        "  routine events still due when each dispute arrived: "
        + ", ".join(f"{v:,}" for k, v in latency.outcome.items() if k.startswith("ahead"))
        + f"; {left:,} still due at the end"
    )
    print()
    print(f"web        gunicorn {args.workers} sync workers, {args.clients} clients, {args.seconds:g} s measured")
    print(
        f"workers    `refund-desk worker` processes (every job running), EVENT_BATCH_SIZE={args.batch}; "
        f"inbox of {args.events:,} events of the usual mix (bench/stream.py); {os.cpu_count()} CPUs"
    )
    print(f"cpu web    {web.cpu_shares()} (100% = one core)")
    for d in drains:
        print(
            f"cpu {d.workers}w     worker {100 * d.worker_cpu / d.seconds:.0f}%, postgres "
            f"{100 * d.postgres_cpu / d.seconds:.0f}%, other "
            f"{100 * max(0.0, d.machine_cpu - d.worker_cpu - d.postgres_cpu) / d.seconds:.0f}%"
        )
    checks = [(f"{d.workers} worker(s)", d.outcome) for d in drains]
    for label, outcome in checks:
        bad = {k: v for k, v in outcome.items() if k not in {"processed", "ignored"}}
        print(
            f"check      {label}: {', '.join(f'{k} {v:,}' for k, v in sorted(outcome.items()))}"
            + (" — FAILED" if bad else "")
        )
    noisy = web.noisy or any(d.noisy for d in drains)
    if noisy:
        print("WARNING    other processes used CPU during a run: figures are low; rerun on a quiet machine")
    best = max(drains, key=lambda d: d.rate)
    ratio = best.rate / web.rps if web.rps else 0.0
    worst = max(lat) if lat else float("inf")
    complete = all(set(d.outcome) <= {"processed", "ignored"} for d in drains)
    marks = [
        (f">= {GOAL_RATIO:.0%} of the web's storing rate", ratio >= GOAL_RATIO, f"{ratio:.0%} with {best.workers}"),
        (f"alert queued within {GOAL_LATENCY:g} s", worst <= GOAL_LATENCY, f"max {worst:.2f} s"),
        ("every event applied once", complete, ""),
    ]
    met = all(ok for _, ok, _ in marks)
    detail = "; ".join(f"{name}: {'yes' if ok else 'NO'}{f' ({v})' if v else ''}" for name, ok, v in marks)
    caveat = " (UNRELIABLE: other processes used CPU; rerun)" if noisy else ""
    print(f"total      {took:.0f} s")
    print(f"goal       {'MET' if met else 'NOT MET'}{caveat}: {detail}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line flags, bounded so a run stays a few minutes."""
    p = argparse.ArgumentParser(prog="python -m bench.worker_bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=50_000, help="events in the inbox per drain (default 50,000)")
    p.add_argument("--batch", type=int, default=50, help="EVENT_BATCH_SIZE for the workers (default 50)")
    p.add_argument("--disputes", type=int, default=5, help="disputes sent during the latency phase (default 5)")
    p.add_argument("--clients", type=int, default=32, help="web phase: concurrent connections (default 32)")
    p.add_argument("--seconds", type=float, default=10, help="web phase: measured seconds (default 10, max 60)")
    p.add_argument("--warmup", type=float, default=2, help="web phase: warm-up seconds (default 2)")
    p.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY") or 4), help="gunicorn workers")
    p.add_argument("--quiet-wait", type=float, default=120, help="wait up to this long for the machine to be idle")
    p.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto", help="web phase load generator")
    args = p.parse_args(argv)
    args.worker_class, args.threads = "sync", 1
    common.check_args(p, args, 60)
    if not 1_000 <= args.events <= 500_000:
        p.error("--events must be between 1,000 and 500,000")
    if not 1 <= args.batch <= 64:
        p.error("--batch must be between 1 and 64 (EVENT_BATCH_SIZE's range)")
    if not 1 <= args.disputes <= 50:
        p.error("--disputes must be between 1 and 50")
    if not 0 <= args.quiet_wait <= 300:
        p.error("--quiet-wait must be in [0, 300]")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 unless something failed (timings never fail the run)."""
    args = parse_args(argv)
    common.unwind_on_sigterm()
    begun = time.perf_counter()
    load, generator = common.choose_load(args.generator, webhook_bench.WrkLoad, webhook_bench.PythonLoad, "1 thread")
    if load is None:
        print(generator, file=sys.stderr)
        return 2
    print(f"generator: {generator}", flush=True)
    for line in common.foreign_load():
        print(f"WARNING: also running (figures may be low): {line}", flush=True)
    stream = Stream()
    try:
        server_url = embedded.start(common.DATA)
        with SlackStandIn(bot_token="xoxb-bench") as slack:  # noqa: S106 - the stand-in's fake token
            print(f"web: storing new events ({args.warmup:g} s warm-up + {args.seconds:g} s) …", flush=True)
            web = measure_web(common.recreate_database(server_url, DB_NAME), stream, args, load)
            drains = []
            for workers in (1, 2):
                print(f"worker: {workers} process(es) draining {args.events:,} events …", flush=True)
                drains.append(
                    drain(server_url, stream.events(args.events, first=workers * 10**8), workers, args, slack)
                )
            print(f"dispute latency: {args.disputes} disputes behind {args.events:,} routine events …", flush=True)
            latency, left = dispute_latency(server_url, stream, args, slack)
    except KeyboardInterrupt:
        print("\ninterrupted; servers and workers stopped", file=sys.stderr)
        return 130
    except (RuntimeError, psycopg.Error) as exc:
        print(f"benchmark could not run: {exc}", file=sys.stderr)
        return 1
    finally:
        for pool_file in Path(webhook_bench.WORK).glob("pool-worker-*.bin"):
            pool_file.unlink(missing_ok=True)
    report(web, drains, latency, left, args, time.perf_counter() - begun)
    return 0


if __name__ == "__main__":
    sys.exit(main())
