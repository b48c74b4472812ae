"""What the benchmarks share: gunicorn under test, the embedded Postgres, CPU accounting, the load generators.

Each benchmark (bench/lookup_bench.py, bench/webhook_bench.py) keeps what is its own: the requests it
signs, the Lua script and request format its generators replay, how it reads an answer, its goal and
its report. Everything here behaves the same for both, so their figures stay comparable.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg

from settings import VARIABLES
from store import migrate

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".data" / "bench"  # the embedded server, shared by every benchmark (each has its own database)

M = TypeVar("M", bound="Measured")
L = TypeVar("L")


# --------------------------------------------------------------------------------------------
# Database
# --------------------------------------------------------------------------------------------
def database_url(server_url: str, name: str) -> str:
    """The server's URL, pointing at database `name`."""
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


def recreate_database(server_url: str, name: str) -> str:
    """Drop database `name` (closing its sessions), create and migrate it; return its URL."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = database_url(server_url, name)
    migrate.migrate(url)
    return url


# --------------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------------
def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(url: str, **secrets: str) -> dict[str, str]:
    """The web process's environment: ours only, none inherited (no SLACK_APP_TOKEN, config file…)."""
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES and k != "GUNICORN_CMD_ARGS"}
    env.update(
        DATABASE_URL=url,
        SLACK_BOT_TOKEN="xoxb-bench",
        STRIPE_SECRET_KEY="sk_test_bench",
        STRIPE_API_BASE="http://127.0.0.1:9",  # nothing listens there: neither a store hit nor a webhook calls out
        SLACK_API_URL="http://127.0.0.1:9/api/",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    env.update(secrets)
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
    worker_class: str = "sync"
    threads: int = 1  # per gthread worker
    # Lines of gunicorn's log that count as problems (WARNING level is all the apps let through).
    problem_marks: tuple[str, ...] = ("Traceback", " ERROR ", "[ERROR]")
    proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        """The same gunicorn settings for every app; no --access-logfile, so the access log is off."""
        cmd = [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(self.workers),
            "--worker-class",
            self.worker_class,
            "--log-level",
            "warning",
            "--graceful-timeout",
            "5",
            "--chdir",
            str(ROOT),
        ]
        if self.worker_class == "gthread":
            cmd += ["--threads", str(self.threads)]
        return [*cmd, self.app]

    def start(self, ready_path: str, timeout: float = 60) -> None:
        """Start gunicorn and wait until `ready_path` answers 200."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            # Own session: a Ctrl-C reaches only us, and we stop gunicorn in order (terminate, wait).
            self.proc = subprocess.Popen(
                self.command(), env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name}: gunicorn exited ({self.proc.returncode}); log {self.log_path}:\n{self.log_tail()}"
                )
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
                os.killpg(self.proc.pid, signal.SIGKILL)  # the master and its workers
            self.proc.wait(timeout=5)

    def log_tail(self, lines: int = 30) -> str:
        """The end of gunicorn's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def log_problems(self) -> int:
        """How many tracebacks or errors gunicorn logged."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return 0
        return sum(1 for line in text.splitlines() if any(mark in line for mark in self.problem_marks))


@contextlib.contextmanager
def serving(server: Server, ready_path: str) -> Iterator[Server]:
    """A started server, stopped however the block ends."""
    try:
        server.start(ready_path)
        yield server
    finally:
        server.stop()


def http(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
) -> tuple[int, bytes]:
    """One request on loopback; (status, body)."""
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=body,
        method=method,  # noqa: S310
        headers=headers or {},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (loopback)
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# --------------------------------------------------------------------------------------------
# CPU accounting: where the two cores went, and whether something else was running
# --------------------------------------------------------------------------------------------
def tree_cpu(pid: int | None, *, database: str | None = None) -> dict[int, float]:
    """user+system CPU seconds of a process and its descendants, by pid (empty without psutil).

    With `database`, Postgres backends serving other databases are left out: the embedded server is
    shared with the other benchmarks, and their queries are someone else's load, not ours.
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
                if database and proc is not root:
                    title = " ".join(proc.cmdline())
                    # A client backend's title is "postgres: user database [local] state".
                    if "[local]" in title and f" {database} " not in title:
                        continue
                t = proc.cpu_times()
                out[proc.pid] = t.user + t.system
    return out


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two tree_cpu snapshots."""
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


def measure_cpu(server: Server, run: Callable[[], M], *, database: str | None = None) -> M:
    """Call `run` (one measured run) and record the CPU of gunicorn, Postgres and the whole machine meanwhile."""
    pid = server.proc.pid if server.proc else None
    pg0, srv0, busy0 = tree_cpu(postmaster_pid(), database=database), tree_cpu(pid), machine_busy()
    result = run()
    pg1, srv1, busy1 = tree_cpu(postmaster_pid(), database=database), tree_cpu(pid), machine_busy()
    result.server_cpu, result.postgres_cpu = cpu_delta(srv0, srv1), cpu_delta(pg0, pg1)
    result.machine_cpu = busy1 - busy0
    return result


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
            print(
                f"  the machine is busy (another benchmark?); waiting up to {limit:.0f} s before {label} …", flush=True
            )
            told = True
    waited = time.monotonic() - started
    if told:
        print(
            f"  waited {waited:.0f} s ({'quiet now' if waited < limit else 'still busy; measuring anyway'})", flush=True
        )
    return waited


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
# Measured runs and load generators
# --------------------------------------------------------------------------------------------
@dataclass
class Measured:
    """One measured run: what every benchmark records (each adds its own counts of answers)."""

    completed: int = 0  # responses read
    seconds: float = 0.0
    errors: int = 0  # not 200, or a socket error / timeout
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
        return self.completed / self.seconds if self.seconds else 0.0

    @property
    def other_cpu(self) -> float:
        """CPU seconds the machine spent on neither gunicorn, Postgres nor the generator: outside load."""
        return max(0.0, self.machine_cpu - self.server_cpu - self.postgres_cpu - self.generator_cpu)

    @property
    def noisy(self) -> bool:
        """Whether other processes took over 15% of a core, so req/s and latency are understated."""
        return self.other_cpu / (self.seconds or 1.0) > 0.15

    def cpu_shares(self) -> str:
        """Each part's CPU as a share of one core, as the reports print it."""
        core = self.seconds or 1.0
        return (
            f"gunicorn {100 * self.server_cpu / core:.0f}%, postgres {100 * self.postgres_cpu / core:.0f}%, "
            f"generator {100 * self.generator_cpu / core:.0f}%, other {100 * self.other_cpu / core:.0f}%"
        )


def _cpu_used(before: resource.struct_rusage, after: resource.struct_rusage) -> float:
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def ensure_wrk() -> tuple[str | None, str]:
    """wrk's path, installing the Debian package when missing and we are root; else why not."""
    found = shutil.which("wrk")
    if found:
        return found, "wrk (found)"
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None, "wrk missing (install it: apt-get install -y wrk)"
    print("wrk not found; apt-get install -y wrk …", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "install", "-y", "-q", "wrk"],
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "wrk"],
    ):
        done = subprocess.run(cmd, env=env, capture_output=True, timeout=300, check=False)
        if cmd[1] == "install" and done.returncode == 0:
            break
    found = shutil.which("wrk")
    return (found, "wrk (installed with apt-get)") if found else (None, "apt-get install wrk failed")


def choose_load(
    choice: str, wrk_load: Callable[[str], L], python_load: Callable[[], L], wrk_detail: str
) -> tuple[L | None, str]:
    """The load generator `--generator` asks for and how to name it; None when wrk was demanded and is missing."""
    if choice == "python":
        return python_load(), "python asyncio (in-process; it competes with the servers for CPU)"
    wrk, how = ensure_wrk()
    if wrk:
        return wrk_load(wrk), f"{how}, {wrk_detail}"
    if choice == "wrk":
        return None, how
    return python_load(), f"python asyncio ({how}; it competes with the servers for CPU)"


# Appended to each benchmark's own wrk script, which sets `counters` (the names of the per-thread
# globals its response() counts, `errors` among them) and a per-thread `problem` (the first bad
# answer). wrk calls setup() per thread before the run and done() once after it, in the main state;
# done() sums the threads and prints one line of JSON for Wrk.run_script.
WRK_LUA_COMMON = r"""
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local e = summary.errors
  local fields = {
    completed = summary.requests, duration_us = summary.duration, connect = e.connect, read = e.read,
    write = e.write, timeout = e.timeout, p50_us = latency:percentile(50), p99_us = latency:percentile(99),
    mean_us = latency.mean, max_us = latency.max,
  }
  local problem = ""
  for _, name in ipairs(counters) do fields[name] = 0 end
  for _, t in ipairs(threads) do
    for _, name in ipairs(counters) do fields[name] = fields[name] + t:get(name) end
    if problem == "" then problem = t:get("problem") end
  end
  local parts = {}
  for name, value in pairs(fields) do parts[#parts + 1] = string.format('"%s": %d', name, value) end
  problem = string.gsub(problem, '[^%w .:_,{}%-]', '?')  -- safe inside a JSON string
  io.write('BENCH_RESULT {' .. table.concat(parts, ', ') .. ', "first_problem": "' .. problem .. '"}\n')
end
"""


class Wrk:
    """wrk (C, one event-loop thread) running a generated Lua script that ends with WRK_LUA_COMMON."""

    def __init__(self, wrk: str, workdir: Path, threads: int = 1):
        self.wrk = wrk
        self.workdir = workdir
        self.script = workdir / "unset.lua"
        # One thread: a few thousand req/s is far from filling one epoll loop, and every core
        # wrk leaves alone goes to the servers being measured.
        self.threads = threads

    def write_script(self, name: str, lua: str) -> None:
        """Write the benchmark's Lua (`lua`) followed by WRK_LUA_COMMON as the script the next runs use."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.script = self.workdir / f"{name}.lua"
        self.script.write_text(lua + WRK_LUA_COMMON)

    def run_script(self, port: int, path: str, clients: int, seconds: float, *script_args: str) -> tuple[dict, float]:
        """Run the script on `path`; done()'s fields (plus socket_errors) and wrk's CPU seconds.

        The script's arguments are `script_args`, then the number of threads.
        """
        threads = min(self.threads, clients)
        cmd = [
            self.wrk,
            f"-t{threads}",
            f"-c{clients}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(self.script),
            f"http://127.0.0.1:{port}{path}",
            "--",
            *script_args,
            str(threads),
        ]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        try:
            # Generous: init() reads the whole pool (up to hundreds of MB) before the timed run starts.
            out, _ = proc.communicate(timeout=seconds + 120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        line = next((ln for ln in out.splitlines() if ln.startswith("BENCH_RESULT ")), None)
        if line is None:
            raise RuntimeError(f"wrk printed no result:\n{out}")
        data = json.loads(line.removeprefix("BENCH_RESULT "))
        data["socket_errors"] = data["connect"] + data["read"] + data["write"] + data["timeout"]
        return data, _cpu_used(before, after)


def drive(
    port: int,
    clients: int,
    seconds: float,
    next_request: Callable[[], tuple[Any, bytes]],
    on_answer: Callable[[Any, int, bytes], None],
    result: M,
) -> M:
    """The Python load generator: `clients` keep-alive connections in this process for `seconds`.

    next_request gives (key, raw request); on_answer(key, status, body) reads each complete answer.
    Fills in result's completed, errors, seconds, percentiles and generator CPU. In-flight requests
    finish after the deadline (no cut-off), so every request sent is answered or counted as an error.
    """
    before = resource.getrusage(resource.RUSAGE_SELF)
    asyncio.run(_drive(port, clients, seconds, next_request, on_answer, result))
    after = resource.getrusage(resource.RUSAGE_SELF)
    result.generator_cpu = _cpu_used(before, after)
    return result


async def _drive(
    port: int,
    clients: int,
    seconds: float,
    next_request: Callable[[], tuple[Any, bytes]],
    on_answer: Callable[[Any, int, bytes], None],
    result: Measured,
) -> None:
    latencies: list[float] = []
    started = time.perf_counter()
    deadline = started + seconds

    async def client() -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        while time.perf_counter() < deadline:
            key, payload = next_request()
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
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"connection" and value.strip().lower() == b"close":
                        close = True
                if length is None:
                    body, close = await reader.read(), True
                else:
                    body = await reader.readexactly(length)
                latencies.append(time.perf_counter() - t0)
                result.completed += 1
                on_answer(key, status, body)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError) as exc:
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


# --------------------------------------------------------------------------------------------
# Output and command line
# --------------------------------------------------------------------------------------------
def row(label: str, cells: list[str], width: int) -> str:
    """One table row: the label left in `width` characters, then each cell right-aligned in 10."""
    return f"{label:<{width}}" + "".join(f"{c:>10}" for c in cells)


def print_problems(label: str, r: Measured, logs: Path) -> None:
    """What went wrong in a run, if anything: the first bad answer, and error lines gunicorn logged."""
    if r.first_problem:
        print(f"first problem ({label}): {r.first_problem}")
    if r.details.get("log_problems"):
        print(f"{label}: gunicorn logged {r.details['log_problems']} error lines; see {logs}")


def clients_note(clients: int, goal_clients: int) -> str:
    """A note for the verdict line when the run used another number of clients than the goal."""
    return "" if clients == goal_clients else f" (measured at {clients} clients; the goal is at {goal_clients})"


def check_args(p: argparse.ArgumentParser, args: argparse.Namespace, max_seconds: float) -> None:
    """Bounds on the flags every benchmark has, so a run cannot take unbounded time."""
    if not 0 < args.seconds <= max_seconds:
        p.error(f"--seconds must be in (0, {max_seconds}]")
    if not 0 <= args.warmup <= 10:
        p.error("--warmup must be in [0, 10]")
    if not 1 <= args.clients <= 1024:
        p.error("--clients must be between 1 and 1024")
    if not 1 <= args.workers <= 64:
        p.error("--workers must be between 1 and 64")


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def unwind_on_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C, so every `serving` block stops its server."""
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
