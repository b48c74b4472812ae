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
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit, urlunsplit

import psycopg

from bench import bare_store
from settings import VARIABLES
from store import embedded, migrate

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".data" / "bench"
WORK = DATA / "webhook"
DB_NAME = "refund_desk_webhook_bench"
WEBHOOK_SECRET = "whsec_bench_0123456789abcdef0123456789abcdef"
OURS_PATH = "/webhooks/stripe"
BARE_PATH = "/bare"
FIXTURES = ROOT.parent / "shared" / "fixtures" / "stripe"
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
        return [sign(self.event_id(phase, n), self.body(self.event_id(phase, n), n), secret)
                for n in range(start, start + count)]

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
def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def fresh_database(server_url: str) -> str:
    """Drop and recreate the bench database, migrate it, add bare_events; return its URL."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    url = _with_database(server_url, DB_NAME)
    migrate.migrate(url)
    bare_store.ensure_table(url)
    return url


def count_stored(url: str, table: str, prefix: str) -> int:
    """Rows of `table` whose id starts with prefix."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table} WHERE id LIKE %s",  # noqa: S608 (fixed names)
                           (prefix + "%",)).fetchone()
    return int(row[0]) if row else 0


def stored_ids(url: str, prefix: str, limit: int) -> list[str]:
    """Ids of stored inbox events starting with prefix."""
    with psycopg.connect(url, autocommit=True) as conn:
        return [r[0] for r in conn.execute("SELECT id FROM stripe_events WHERE id LIKE %s LIMIT %s",
                                           (prefix + "%", limit))]


def missing_ids(url: str, table: str, ids: list[str]) -> int:
    """How many of ids are not in table."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table} WHERE id = ANY(%s)",  # noqa: S608 (fixed names)
                           (ids,)).fetchone()
    return len(set(ids)) - (int(row[0]) if row else 0)


# --------------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------------
def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(database_url: str) -> dict[str, str]:
    """The web process's environment: ours only, nothing inherited that could change it."""
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES and k != "GUNICORN_CMD_ARGS"}
    env.update(
        DATABASE_URL=database_url,
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        SLACK_BOT_TOKEN="xoxb-bench",
        SLACK_SIGNING_SECRET="bench",
        STRIPE_SECRET_KEY="sk_test_bench",
        STRIPE_API_BASE="http://127.0.0.1:9",  # nothing listens there; the webhook never calls Stripe
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
    args: argparse.Namespace
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        """The same gunicorn settings for every app; no --access-logfile, so the access log is off."""
        cmd = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}",
               "--workers", str(self.args.workers), "--worker-class", self.args.worker_class,
               "--log-level", "warning", "--graceful-timeout", "5", "--chdir", str(ROOT)]
        if self.args.worker_class == "gthread":
            cmd += ["--threads", str(self.args.threads)]
        return [*cmd, self.app]

    def start(self, ready_path: str, timeout: float = 60) -> None:
        """Start gunicorn and wait until `ready_path` answers 200."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            # Own session: a Ctrl-C reaches only us, and we stop gunicorn in order (terminate, wait).
            self.proc = subprocess.Popen(self.command(), env=self.env, cwd=ROOT, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name}: gunicorn exited ({self.proc.returncode}); "
                                   f"log {self.log_path}:\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                if http(self.port, "GET", ready_path)[0] == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name}: not ready after {timeout:.0f} s; log {self.log_path}:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM (gunicorn's graceful stop), then SIGKILL of the group if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)

    def log_tail(self, lines: int = 30) -> str:
        """The end of gunicorn's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def log_problems(self) -> int:
        """Tracebacks and errors gunicorn logged."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return 0
        return sum(1 for line in text.splitlines() if "Traceback" in line or "ERROR" in line)


@contextlib.contextmanager
def serving(server: Server, ready_path: str) -> Iterator[Server]:
    """A started server, stopped however the block ends."""
    try:
        server.start(ready_path)
        yield server
    finally:
        server.stop()


def http(port: int, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
         timeout: float = 10) -> tuple[int, bytes]:
    """One request on loopback; (status, body)."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method,  # noqa: S310
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (loopback)
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def post_event(port: int, path: str, item: Signed) -> tuple[int, bytes]:
    """POST one signed event as Stripe does."""
    return http(port, "POST", path, item.body,
                {"Content-Type": "application/json; charset=utf-8", "Stripe-Signature": item.header})


# --------------------------------------------------------------------------------------------
# CPU accounting: where the two cores went, and whether something else was running
# --------------------------------------------------------------------------------------------
def tree_cpu(pid: int | None, *, postgres: bool = False) -> dict[int, float]:
    """user+system CPU seconds of a process and its descendants, by pid (empty without psutil).

    postgres=True leaves out backends serving other databases: the embedded server is shared with
    the other benchmarks, and their queries are someone else's load, not ours.
    """
    try:
        import psutil
    except ImportError:
        return {}
    out: dict[int, float] = {}
    if pid is None:
        return out
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        for proc in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                if postgres and proc is not root:
                    title = " ".join(proc.cmdline())
                    # A client backend's title is "postgres: user database [local] state".
                    if "[local]" in title and f" {DB_NAME} " not in title:
                        continue
                t = proc.cpu_times()
                out[proc.pid] = t.user + t.system
    return out


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two tree_cpu snapshots."""
    return sum(v - before.get(pid, 0.0) for pid, v in after.items())


def machine_busy() -> float:
    """CPU seconds the machine has been busy since boot (/proc/stat; 0 where missing)."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def wait_quiet(limit: float, label: str) -> float:
    """Wait (up to `limit` s) until the machine is idle for a second; return the seconds waited.

    Called while our servers are idle, so any busy CPU is someone else's: other benchmarks on this
    2-core machine would halve the figures (the report still flags load that starts mid-run).
    """
    started = time.monotonic()
    told = False
    while time.monotonic() - started < limit:
        before = machine_busy()
        time.sleep(1.0)
        if machine_busy() - before < 0.2:  # under a fifth of a core: quiet enough
            break
        if not told:
            print(f"  the machine is busy (another benchmark?); waiting up to {limit:.0f} s before {label} …",
                  flush=True)
            told = True
    waited = time.monotonic() - started
    if told:
        print(f"  waited {waited:.0f} s ({'quiet now' if waited < limit else 'still busy; measuring anyway'})",
              flush=True)
    return waited


def postmaster_pid() -> int | None:
    """The bench Postgres server's pid (first line of postmaster.pid)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int((DATA / "postgres" / "postmaster.pid").read_text().splitlines()[0])
    return None


def foreign_load() -> list[str]:
    """Other benchmarks or servers running now (not ours): their figures and ours would mix."""
    try:
        import psutil
    except ImportError:
        return []
    mine = {os.getpid(), *(p.pid for p in psutil.Process().children(recursive=True))}
    found: dict[int, tuple[int, str]] = {}
    for proc in psutil.process_iter(["pid", "ppid", "cmdline"]):
        cmd = " ".join(proc.info.get("cmdline") or [])
        if proc.info["pid"] not in mine and any(w in cmd for w in ("_bench", "wrk ", "gunicorn")):
            found[proc.info["pid"]] = (proc.info["ppid"], cmd)
    # One line per server: a gunicorn worker is named by its master.
    return [f"{pid} {cmd[:110]}" for pid, (ppid, cmd) in found.items() if ppid not in found]


# --------------------------------------------------------------------------------------------
# Load generators
# --------------------------------------------------------------------------------------------
@dataclass
class Result:
    """One measured run."""

    sent: int = 0  # requests started (wrk: request() calls; some may be cut off by the end of the run)
    completed: int = 0  # responses read
    seconds: float = 0.0
    fresh: int = 0  # 200 with "duplicate": false
    dups: int = 0  # 200 with "duplicate": true
    other_ok: int = 0  # 200 without a duplicate field (the bare endpoint)
    errors: int = 0  # not 200, or a socket error / timeout
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    acked_ids: list[str] | None = None  # the Python generator knows which ids were acknowledged
    generator_cpu: float = 0.0
    server_cpu: float = 0.0
    postgres_cpu: float = 0.0
    machine_cpu: float = 0.0
    first_problem: str = ""
    details: dict = field(default_factory=dict)

    @property
    def rps(self) -> float:
        """Completed requests per second."""
        return self.completed / self.seconds if self.seconds else 0.0


WRK_LUA = r"""
-- Generated by bench/webhook_bench.py: POST pre-signed Stripe events, each once in order (the
-- pool wraps around only if the run outlasts it), classify every answer, print JSON from done().
local pool_path = @POOL@
local url_path = @PATH@
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

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

function done(summary, latency, requests)
  local t = {sent = 0, fresh = 0, dups = 0, other_ok = 0, errors = 0}
  local problem = ""
  for _, th in ipairs(threads) do
    for k, v in pairs(t) do t[k] = v + th:get(k) end
    if problem == "" then problem = th:get("problem") end
  end
  local e = summary.errors
  problem = string.gsub(problem, '[^%w .:_,{}%-]', '?')  -- safe inside a JSON string
  io.write(string.format(
    'BENCH_RESULT {"sent": %d, "completed": %d, "duration_us": %d, "fresh": %d, "dups": %d, ' ..
    '"other_ok": %d, "errors": %d, "connect": %d, "read": %d, "write": %d, "timeout": %d, ' ..
    '"p50_us": %d, "p99_us": %d, "max_us": %d, "first_problem": "%s"}\n',
    t.sent, summary.requests, summary.duration, t.fresh, t.dups, t.other_ok, t.errors,
    e.connect, e.read, e.write, e.timeout, latency:percentile(50), latency:percentile(99), latency.max,
    problem))
end
"""


def ensure_wrk() -> tuple[str | None, str]:
    """wrk's path, installing the Debian package when missing and we are root; else why not."""
    found = shutil.which("wrk")
    if found:
        return found, "wrk (found)"
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None, "wrk missing (apt-get install -y wrk)"
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
    """wrk (C, one event-loop thread) replaying pre-signed events from a file through a Lua script."""

    def __init__(self, wrk: str, threads: int = 1):
        self.wrk = wrk
        # One thread: a few thousand req/s is far from filling one epoll loop, and every core
        # wrk leaves alone goes to the servers being measured.
        self.threads = threads
        self.script = WORK / "unset.lua"
        self.path = OURS_PATH

    def prepare(self, name: str, path: str, pool: list[Signed]) -> None:
        """Write the pool (`length signature` line, then the body) and the Lua script reading it."""
        WORK.mkdir(parents=True, exist_ok=True)
        pool_file = WORK / f"pool-{name}.bin"
        with pool_file.open("wb") as fh:
            for item in pool:
                fh.write(f"{len(item.body)} {item.header}\n".encode())
                fh.write(item.body)
        self.script = WORK / f"{name}.lua"
        self.script.write_text(WRK_LUA.replace("@POOL@", json.dumps(str(pool_file)))
                               .replace("@PATH@", json.dumps(path)))
        self.path = path

    def run(self, port: int, clients: int, seconds: float) -> Result:
        """Load `port` for `seconds` with `clients` connections."""
        threads = min(self.threads, clients)
        cmd = [self.wrk, f"-t{threads}", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
               "-s", str(self.script), f"http://127.0.0.1:{port}{self.path}", "--", str(threads)]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=seconds + 120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        line = next((ln for ln in out.splitlines() if ln.startswith("BENCH_RESULT ")), None)
        if line is None:
            raise RuntimeError(f"wrk printed no result:\n{out}")
        d = json.loads(line.removeprefix("BENCH_RESULT "))
        socket_errors = d["connect"] + d["read"] + d["write"] + d["timeout"]
        return Result(
            sent=d["sent"], completed=d["completed"], seconds=d["duration_us"] / 1e6,
            fresh=d["fresh"], dups=d["dups"], other_ok=d["other_ok"], errors=d["errors"] + socket_errors,
            p50_ms=d["p50_us"] / 1000, p99_ms=d["p99_us"] / 1000,
            generator_cpu=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            first_problem=d["first_problem"], details={"max_ms": d["max_us"] / 1000, "socket_errors": socket_errors},
        )


class PythonLoad:
    """An asyncio generator in this process (when wrk is unavailable): costlier, but knows each acked id."""

    def __init__(self) -> None:
        self.wire: list[tuple[str, bytes]] = []

    def prepare(self, name: str, path: str, pool: list[Signed]) -> None:
        """Render every request to bytes once, outside the measured time."""
        self.wire = [(s.id, (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n"
                             f"Content-Type: application/json; charset=utf-8\r\nStripe-Signature: {s.header}\r\n"
                             f"Content-Length: {len(s.body)}\r\n\r\n").encode() + s.body) for s in pool]

    def run(self, port: int, clients: int, seconds: float) -> Result:
        """Load `port` for `seconds` with `clients` connections; in-flight requests finish (no cut-off)."""
        before = resource.getrusage(resource.RUSAGE_SELF)
        result = asyncio.run(self._load(port, clients, seconds))
        after = resource.getrusage(resource.RUSAGE_SELF)
        result.generator_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return result

    async def _load(self, port: int, clients: int, seconds: float) -> Result:
        result = Result(acked_ids=[])
        latencies: list[float] = []
        wire = self.wire
        state = {"next": 0}
        started = time.perf_counter()
        deadline = started + seconds

        async def client() -> None:
            reader: asyncio.StreamReader | None = None
            writer: asyncio.StreamWriter | None = None
            while time.perf_counter() < deadline:
                event_id, payload = wire[state["next"] % len(wire)]
                state["next"] += 1
                result.sent += 1
                close = True
                try:
                    if writer is None:
                        reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    assert reader is not None
                    t0 = time.perf_counter()
                    writer.write(payload)
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
                    status, length, close = int(head[9:12]), None, False
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
                    result.completed += 1
                    if status != 200:
                        result.errors += 1
                        result.first_problem = result.first_problem or f"HTTP {status}: {body[:160]!r}"
                    elif b'"duplicate":false' in body:
                        result.fresh += 1
                        result.acked_ids.append(event_id)  # type: ignore[union-attr]
                    elif b'"duplicate":true' in body:
                        result.dups += 1
                    else:
                        result.other_ok += 1
                        result.acked_ids.append(event_id)  # type: ignore[union-attr]
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


Load = WrkLoad | PythonLoad


# --------------------------------------------------------------------------------------------
# Phases
# --------------------------------------------------------------------------------------------
def measured(load: Load, server: Server, clients: int, seconds: float) -> Result:
    """One measured run with CPU accounting around it."""
    pid = server.proc.pid if server.proc else None
    pg0, srv0, busy0 = tree_cpu(postmaster_pid(), postgres=True), tree_cpu(pid), machine_busy()
    result = load.run(server.port, clients, seconds)
    pg1, srv1, busy1 = tree_cpu(postmaster_pid(), postgres=True), tree_cpu(pid), machine_busy()
    result.server_cpu, result.postgres_cpu = cpu_delta(srv0, srv1), cpu_delta(pg0, pg1)
    result.machine_cpu = busy1 - busy0
    return result


def pool_size(warm: Result, seconds: float) -> int:
    """Bodies enough for the measured run at 1.5× the warm-up rate (each sent once)."""
    rate = warm.completed / warm.seconds if warm.seconds else 0.0
    rate = max(rate, 2500.0)  # a short warm-up can underestimate: bodies are cheap, a repeat is not
    return min(MAX_POOL, int(rate * seconds * 1.5) + 5000)


@dataclass
class Ours:
    """What the run on our app produced."""

    new: Result
    dup: Result
    measured_pool: list[Signed]


def run_ours(server: Server, load: Load, factory: EventFactory, args: argparse.Namespace) -> Ours:
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
    wait_quiet(args.quiet_wait, "new events")
    warm = Result()
    if args.warmup:
        load.prepare("ours-warm", OURS_PATH, factory.signed("w", 0, int(args.warmup * 6000) + 2000, WEBHOOK_SECRET))
        warm = load.run(server.port, args.clients, args.warmup)
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
    wait_quiet(args.quiet_wait, "duplicates")
    if args.warmup:
        load.run(server.port, args.clients, args.warmup)
    dup = measured(load, server, args.clients, args.seconds)
    dup.details.update(pool=len(dup_pool))
    for r in (new, dup):
        r.details["log_problems"] = server.log_problems()
    return Ours(new, dup, pool)


def run_bare(server: Server, load: Load, factory: EventFactory, pool: list[Signed],
             args: argparse.Namespace) -> Result:
    """The same bodies (and headers) to the bare endpoint: warm-up bodies, then the measured ones."""
    status, body = post_event(server.port, BARE_PATH, factory.signed("c", 0, 1, WEBHOOK_SECRET)[0])
    if status != 200:
        raise RuntimeError(f"bare: a POST answered {status}: {body[:300]!r}; log:\n{server.log_tail()}")
    wait_quiet(args.quiet_wait, "bare")
    warm = Result()
    if args.warmup:
        load.prepare("bare-warm", BARE_PATH, factory.signed("w", 0, int(args.warmup * 8000) + 2000, WEBHOOK_SECRET))
        warm = load.run(server.port, args.clients, args.warmup)
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
    return ok, (f"{acked:,} acknowledged, {stored:,} stored ({in_flight} stored while in flight at the cut-off; "
                f"{r.sent - r.completed} requests were cut off)")


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------
def _row(label: str, cells: list[str]) -> str:
    return f"{label:<24}" + "".join(f"{c:>10}" for c in cells)


def report(ours: Ours, bare: Result, checks: list[tuple[str, bool, str]], args: argparse.Namespace,
           generator: str, factory: EventFactory) -> None:
    """The table, the setting, and the verdict on the goal."""
    new, dup = ours.new, ours.dup
    wrong = {"new events": new.dups, "duplicates": dup.fresh, "bare store": 0}
    print()
    print(_row("", ["req/s", "p50 ms", "p99 ms", "errors", "wrong"]))
    for label, r in (("ours: new events", new), ("ours: duplicates", dup), ("bare store", bare)):
        print(_row(label, [f"{r.rps:,.0f}", f"{r.p50_ms:.1f}", f"{r.p99_ms:.1f}", f"{r.errors:,}",
                           f"{wrong[label.removeprefix('ours: ')]:,}"]))
    ratio = new.rps / bare.rps if bare.rps else 0.0
    print(_row("ratio ours-new / bare", [f"{ratio:.2f}", f"{new.p50_ms / bare.p50_ms:.2f}" if bare.p50_ms else "—",
                                         f"{new.p99_ms / bare.p99_ms:.2f}" if bare.p99_ms else "—", "", ""]))
    print("(wrong: a 200 saying duplicate when new was expected, or new when a duplicate was expected)")
    print()
    workers = f"{args.workers} {args.worker_class}" + (f" × {args.threads} threads" if args.worker_class == "gthread"
                                                       else "")
    print(f"servers    gunicorn, {workers} workers each app, one app at a time, access log off")
    print(f"load       {args.clients} clients, {args.seconds:g} s measured after {args.warmup:g} s warm-up each, "
          f"generator {generator}, {os.cpu_count()} CPUs")
    print(f"events     fixtures of {factory.mean_size / 1024:.1f} KB on average, {len(FIXTURE_NAMES)} kinds; "
          f"new pool {new.details['pool']:,}, duplicate pool {dup.details['pool']:,}, bare pool "
          f"{bare.details['pool']:,}")
    noisy = []
    for label, r in (("new", new), ("dup", dup), ("bare", bare)):
        core = r.seconds or 1.0
        other = max(0.0, r.machine_cpu - r.server_cpu - r.postgres_cpu - r.generator_cpu)
        print(f"cpu {label:<6} gunicorn {100 * r.server_cpu / core:.0f}%, postgres {100 * r.postgres_cpu / core:.0f}%,"
              f" generator {100 * r.generator_cpu / core:.0f}%, other {100 * other / core:.0f}% (100% = one core)")
        if other / core > 0.15:
            noisy.append(label)
        if r.details.get("wrapped"):
            print(f"WARNING    the {label} run outlasted its pool of bodies: some were sent twice")
        if r.first_problem:
            print(f"first problem ({label}): {r.first_problem}")
        if r.details.get("log_problems"):
            print(f"{label}: gunicorn logged {r.details['log_problems']} error lines; see {WORK / 'logs'}")
    if noisy:
        print(f"WARNING    other processes used CPU during the {', '.join(noisy)} run(s): figures are low; "
              "rerun on a quiet machine")
    for label, ok, text in checks:
        print(f"{label:<10} {'OK' if ok else 'FAILED'}: {text}")
    at = "" if args.clients == GOAL_CLIENTS else f" (measured at {args.clients} clients; the goal is at 32)"
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
    p.add_argument("--seconds", type=float, default=10,
                   help=f"measured seconds per phase (default 10, max {MAX_SECONDS})")
    # The Procfile's default (WEB_CONCURRENCY, else 4 = 2 × cores): a sync worker waits on Postgres for
    # part of each request, so two per core keep both cores busy. 6 gave ≈ 5 % more new events/s
    # (same ratio to bare) but slows lookups; the bench measures what production runs.
    p.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY") or 4),
                   help="gunicorn workers per app (default $WEB_CONCURRENCY or 4, as the Procfile)")
    p.add_argument("--worker-class", choices=["sync", "gthread"], default="sync",
                   help="gunicorn worker class for both apps (default sync, as the Procfile runs it)")
    p.add_argument("--threads", type=int, default=4, help="threads per gthread worker (default 4)")
    p.add_argument("--warmup", type=float, default=2, help="warm-up seconds before each phase (default 2)")
    p.add_argument("--quiet-wait", type=float, default=120,
                   help="before each phase, wait up to this many seconds for other CPU load to stop (default 120, "
                        "0: don't)")
    p.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto",
                   help="load generator: wrk (installed with apt-get when missing) or the Python fallback")
    args = p.parse_args(argv)
    if not 0 < args.seconds <= MAX_SECONDS:
        p.error(f"--seconds must be in (0, {MAX_SECONDS}]")
    if not 0 <= args.warmup <= 10:
        p.error("--warmup must be in [0, 10]")
    if not 0 <= args.quiet_wait <= 300:
        p.error("--quiet-wait must be in [0, 300]")
    if not 1 <= args.clients <= 1024:
        p.error("--clients must be between 1 and 1024")
    if not 1 <= args.workers <= 64:
        p.error("--workers must be between 1 and 64")
    if not 1 <= args.threads <= 64:
        p.error("--threads must be between 1 and 64")
    return args


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM unwinds like Ctrl-C, so every server is stopped


def choose_load(args: argparse.Namespace) -> tuple[Load | None, str]:
    """The load generator and how to name it; None when wrk was demanded and is missing."""
    if args.generator == "python":
        return PythonLoad(), "python asyncio (in-process; it competes with the servers for CPU)"
    wrk, how = ensure_wrk()
    if wrk:
        return WrkLoad(wrk), f"{how}, 1 thread"
    if args.generator == "wrk":
        return None, how
    return PythonLoad(), f"python asyncio ({how}; it competes with the servers for CPU)"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 unless something failed (timings never fail the run)."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    started = time.perf_counter()
    load, generator = choose_load(args)
    if load is None:
        print(generator, file=sys.stderr)
        return 2
    print(f"generator: {generator}", flush=True)
    for line in foreign_load():
        print(f"WARNING: also running (figures may be low): {line}", flush=True)

    factory = EventFactory()
    try:
        server_url = embedded.start(DATA)  # shared with other benchmarks; stopped when the last one exits
        url = fresh_database(server_url)
        env = server_env(url)
        logs = WORK / "logs"
        ours_server = Server("ours", "app:create_app()", free_port(), args, env, logs / "ours.log")
        bare_server = Server("bare", "bench.bare_store:create_app()", free_port(), args, env, logs / "bare.log")
        phase = f"{args.warmup:g} s warm-up + {args.seconds:g} s"
        print(f"measuring our webhook: new events, then duplicates ({phase} each) …", flush=True)
        with serving(ours_server, "/readyz"):
            ours = run_ours(ours_server, load, factory, args)
        print(f"measuring the bare store ({phase}) …", flush=True)
        with serving(bare_server, "/healthz"):
            bare = run_bare(bare_server, load, factory, ours.measured_pool, args)
        checks = [("durability", *durability(url, "stripe_events", ours.new)),
                  ("bare", *durability(url, "bare_events", bare))]
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
