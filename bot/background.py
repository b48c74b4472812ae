"""Work that must not delay Slack's acknowledgement (a Stripe call, a Slack call).

Bolt's lazy listeners copy the whole request for every invocation, even when there is nothing to
do after the ack; for /refunds, where a store hit answers inside the ack, that copy was a fifth of
the request's CPU. So the command submits its slow part here, and only when it has one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

log = logging.getLogger(__name__)

_executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="after-ack")


def _report(future: Future) -> None:
    error = future.exception()
    if error is not None:
        log.error("work after a Slack acknowledgement failed", exc_info=error)


def later(fn: Callable[..., object], *args: object) -> Future:
    """Run fn(*args) on a background thread; a failure is logged with its traceback."""
    future = _executor.submit(fn, *args)
    future.add_done_callback(_report)
    return future
