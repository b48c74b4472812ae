"""The Home tab: what waits for each person, by their roles; published when opened and again when it changes."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta

from slack_sdk.errors import SlackApiError

from domain.errors import DeskError
from domain.history import DISPUTE_OPEN, STATUS_GROUPS, Filter, Home
from messages import home as home_view
from services.deps import Deps
from store import db, homes
from store import history as store

log = logging.getLogger(__name__)

SHOWN = 15  # requests or disputes per section; the rest are counted and a command lists them
RECENT = timedelta(days=30)


def home_for(deps: Deps, user: str, now: datetime, *, notice: str | None = None) -> Home:
    """What this person's tab shows now. Roles Slack cannot confirm show nothing they would grant."""
    roles = deps.roles
    try:
        viewer = roles.may_view(user)
        requester = roles.may_request(user)
        approver = roles.may_decide(user)
        oncall = roles.may_take_disputes(user)
    except DeskError as exc:
        return Home(user=user, notice=notice or exc.message)
    home = Home(user, viewer, requester, approver, oncall, notice=notice)
    if not viewer:
        return home
    with db.connection(deps.pool) as conn:
        if approver:
            pending = Filter(statuses=("pending",))
            page = store.requests(conn, pending, limit=SHOWN + 20)
            waiting = [r for r in page.rows if r.requested_by != user and user not in r.approvals]
            own = store.count_requests(conn, replace(pending, requested_by=user))
            home = replace(
                home, waiting=tuple(waiting[:SHOWN]), waiting_total=store.count_requests(conn, pending) - own
            )
        mine_open = store.requests(conn, Filter(STATUS_GROUPS["open"], requested_by=user), limit=SHOWN).rows
        recent = store.requests(conn, Filter(requested_by=user, since=now - RECENT), limit=SHOWN).rows
        seen = {r.id for r in mine_open}
        mine = sorted([*mine_open, *(r for r in recent if r.id not in seen)], key=lambda r: r.created_at, reverse=True)
        if mine or requester:
            total = store.count_requests(conn, Filter(requested_by=user))
            home = replace(home, mine=tuple(mine[:SHOWN]), mine_total=total)
        if oncall:
            theirs = Filter(DISPUTE_OPEN, requested_by=user, unowned_too=True)
            page = store.disputes(conn, theirs, limit=SHOWN)
            home = replace(home, disputes=page.rows, disputes_total=store.count_disputes(conn, theirs))
    return home


def publish(deps: Deps, user: str, now: datetime, *, notice: str | None = None) -> bool:
    """Publish a person's Home tab (views.publish); False when Slack refused or could not be reached."""
    home = home_for(deps, user, now, notice=notice)
    try:
        deps.slack.views_publish(user_id=user, view=home_view.home_view(home, now=now))
    except (SlackApiError, OSError) as exc:
        log.warning("views.publish for %s failed: %s", user, type(exc).__name__)
        return False
    with db.connection(deps.pool) as conn:
        homes.published(conn, user, home.sections, now)
    return True


def refresh_stale(deps: Deps, now: datetime, *, limit: int = 20) -> int:
    """Publish again the tabs whose content changed since they were published; how many were taken."""
    with db.connection(deps.pool) as conn:
        users = homes.claim_stale(conn, limit)
    for user in users:
        if not publish(deps, user, now):
            with db.connection(deps.pool) as conn:
                homes.mark_stale(conn, users=[user], now=now)  # try again on a later round
    return len(users)
