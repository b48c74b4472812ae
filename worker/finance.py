"""The worker's finance jobs: sealing the audit log every few seconds; each minute, yesterday's
reconciliation once it is due, payouts paid since, and on the first of the month last month's export."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta

from domain.clock import utcnow
from domain.errors import DeskError
from services import audit_trail, exports, reconciliation
from services.deps import Deps

log = logging.getLogger(__name__)

Loop = Callable[[str, Callable[[], bool], threading.Event, float], None]
FIRST_ROUND = timedelta(minutes=1)


def threads(deps: Deps, stop: threading.Event, idle: float, loop: Loop) -> list[threading.Thread]:
    """The finance threads (not started), run by the worker's own loop."""
    ctx = deps.requests
    # The first round waits a minute: a worker that just started (or a test's) has nothing overdue
    # that a minute changes, and a restart loop never turns into a reconciliation loop.
    first = utcnow() + FIRST_ROUND

    def seal() -> bool:
        # A busy round (a batch sealed) goes on at once; the seal lock keeps one worker at it.
        return audit_trail.seal(deps.pool, now=utcnow()) > 0

    def finance() -> bool:
        now = utcnow()
        if now < first:
            return False
        reconciliation.reconcile_due(ctx, now)
        reconciliation.reconcile_due_payouts(ctx, now)
        try:
            exports.monthly_due(deps.pool, deps.slack, deps.settings.finance_target, now)
        except DeskError as exc:
            log.warning("the monthly export was not posted (the next round tries again): %s", exc.message)
        return False

    return [
        threading.Thread(target=loop, args=("audit-seal", seal, stop, max(idle, 2.0)), name="audit-seal", daemon=True),
        # Days and months change slowly: once a minute is plenty, and a long day's run has its own thread.
        threading.Thread(target=loop, args=("finance", finance, stop, max(idle, 60.0)), name="finance", daemon=True),
    ]
