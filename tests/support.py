"""Helpers shared by tests (importable because tests/ is on pytest's pythonpath)."""

from __future__ import annotations

import json
import random
import string
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"


def fixture_json(relative: str) -> dict:
    """A file from tests/fixtures, parsed."""
    return json.loads((FIXTURES / relative).read_text())


def stripe_fixtures(pattern: str) -> list[Path]:
    """Stripe fixture files matching a glob, sorted."""
    return sorted((FIXTURES / "stripe").glob(pattern))


def wait_until(done, *, timeout: float, what: str, every: float = 0.1) -> None:
    """Poll `done()` until it is true; fail the test saying `what` did not happen in time."""
    import time

    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout:g} s"
        time.sleep(every)


class running_workers:  # noqa: N801 - used as a context manager, like contextlib's helpers
    """Several worker processes' jobs (as threads, each with its own pool), stopped on exit."""

    def __init__(self, settings, count: int = 2, idle: float = 0.05):
        self.settings, self.count, self.idle = settings, count, idle

    def __enter__(self) -> running_workers:
        import threading

        from app import build_deps
        from worker import main as worker

        self.stop = threading.Event()
        self.deps = [build_deps(self.settings) for _ in range(self.count)]
        self.threads = [t for d in self.deps for t in worker.start(d, self.stop, idle=self.idle)]
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)
        for deps in self.deps:
            deps.pool.close()


# --- reading what the Slack stand-in holds -------------------------------------------------------------


def top_level(messages: list[dict]) -> list[dict]:
    """The messages of a channel that are not thread replies."""
    return [m for m in messages if not m.get("thread_ts") or m["thread_ts"] == m["ts"]]


def replies(messages: list[dict], parent: dict | None = None) -> list[dict]:
    """The thread replies of a channel, under one parent or under any."""
    return [
        m
        for m in messages
        if m.get("thread_ts") and m["ts"] != m["thread_ts"] and (parent is None or m["thread_ts"] == parent["ts"])
    ]


def threads(messages: list[dict]) -> tuple[list[dict], dict[str, list[str]]]:
    """Top-level messages of a channel and, for each, the texts in its thread."""
    top = top_level(messages)
    return top, {m["ts"]: [r["text"] for r in replies(messages, m)] for m in top}


def refunds_created(stripe_api) -> list[dict]:
    """The refunds the Stripe stand-in really created (an idempotent replay is not a new one)."""
    return [
        r
        for r in stripe_api.requests
        if r["method"] == "POST"
        and r["path"] == "/v1/refunds"
        and r["status"] == 200
        and not r.get("idempotent_replayed")
    ]


def random_id(prefix: str, length: int) -> str:
    """An id of random letters (they do not compress: a repeated letter would fit an index and prove nothing)."""
    rng = random.Random(length)
    return prefix + "".join(rng.choices(string.ascii_letters + string.digits, k=length))


def answered(web, resp_key: tuple, timeout: float = 15) -> dict:
    """The last thing said through a command's or click's response_url (after its acknowledgement)."""
    resp, key = resp_key
    assert resp.status_code == 200, resp.text
    web.slack.wait_for(lambda calls: any(c.key == key for c in calls), timeout=timeout)
    return web.slack.responses(key)[-1]
