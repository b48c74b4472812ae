"""Helpers shared by tests (importable because tests/ is on pytest's pythonpath)."""

from __future__ import annotations

import json
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
