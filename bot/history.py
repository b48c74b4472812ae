"""`/refunds #42`, `mine`, `history`, `disputes`, and the Next button of their lists."""

from __future__ import annotations

import logging
from dataclasses import replace

from slack_bolt import Ack, App, Respond

from bot.actions import action_value
from bot.background import later
from domain.clock import utcnow
from domain.commands import Disputes, History, Mine, ShowRequest
from domain.errors import DeskError
from domain.history import DISPUTE_OPEN, PAGE_SIZE, Filter, Position, period_range
from messages import history as hb
from messages import ids
from services import history
from services.deps import Deps

log = logging.getLogger(__name__)

Verb = ShowRequest | Mine | History | Disputes


def _say(respond: Respond, text: str, blocks: list | None = None) -> None:
    respond(replace_original=True, response_type="ephemeral", text=text, blocks=blocks)


def answer(ack: Ack, respond: Respond, cmd: Verb, user: str, deps: Deps) -> None:
    """Acknowledge at once; roles may need Slack and a permalink does, so the answer follows."""
    what = f"request #{cmd.number}" if isinstance(cmd, ShowRequest) else "the list"
    ack(response_type="ephemeral", text=f"Looking up {what}…")
    later(_answer, respond, cmd, user, deps)


def _listing(cmd: Mine | History | Disputes, user: str) -> hb.Listing:
    if isinstance(cmd, Disputes):
        return hb.Listing("disputes", Filter(statuses=DISPUTE_OPEN if cmd.scope == "open" else ()))
    since, until = period_range(cmd.period, utcnow()) if cmd.period else (None, None)
    if isinstance(cmd, Mine):
        return hb.Listing("mine", Filter(cmd.statuses, requested_by=user, since=since, until=until))
    return hb.Listing("history", Filter(cmd.statuses, requested_by=cmd.user, since=since, until=until))


def viewer_refusal(deps: Deps, user: str) -> str | None:
    """Why this person may not see payment details (VIEWERS), or None when they may."""
    try:
        allowed = deps.roles.may_view(user)
    except DeskError as exc:
        return exc.message
    return None if allowed else hb.refused_text("payment details")


def _refusal(deps: Deps, user: str, kind: str) -> str | None:
    """Why this person may not see this list (or request), or None. Raises RolesUnavailable."""
    if not deps.roles.may_view(user):
        return hb.refused_text("payment details")
    if kind == "history" and not deps.roles.may_decide(user):
        return "Everyone's requests are for approvers and admins; `/refunds mine` lists yours."
    return None


def _answer(respond: Respond, cmd: Verb, user: str, deps: Deps) -> None:
    try:
        kind = "request" if isinstance(cmd, ShowRequest) else _listing(cmd, user).kind
        refusal = _refusal(deps, user, kind)
        if refusal:
            _say(respond, refusal)
            return
        if isinstance(cmd, ShowRequest):
            detail = history.with_permalink(history.request_detail(deps.pool, cmd.number), deps.slack)
            blocks = hb.request_detail_blocks(detail, livemode=deps.settings.stripe_livemode)
            _say(respond, hb.request_detail_text(detail), blocks)
            return
        _show_page(respond, deps, _listing(cmd, user), None)
    except DeskError as exc:
        _say(respond, exc.message)


def _show_page(respond: Respond, deps: Deps, listing: hb.Listing, after: Position | None) -> None:
    if listing.kind == "disputes":
        page, total = history.disputes_with_total(deps.pool, listing.filter, limit=PAGE_SIZE, after=after)
    else:
        page, total = history.requests_with_total(deps.pool, listing.filter, limit=PAGE_SIZE, after=after)
    _say(respond, hb.list_text(listing, total), hb.list_blocks(listing, page, total))


def register(app: App, deps: Deps) -> None:
    """Attach the Next button of lists."""

    def just_ack(ack: Ack) -> None:
        ack()

    def next_page(body: dict, respond: Respond) -> None:
        user = body["user"]["id"]
        try:
            listing, after = hb.read_next(action_value(body))
        except ValueError:
            _say(respond, "That button does not name a list; run the command again.")
            return
        if listing.kind == "mine":
            # Whatever the button says, `mine` is the clicker's own list.
            listing = replace(listing, filter=replace(listing.filter, requested_by=user))
        try:
            refusal = _refusal(deps, user, listing.kind)
            if refusal:
                _say(respond, refusal)
                return
            _show_page(respond, deps, listing, after)
        except DeskError as exc:
            _say(respond, exc.message)
        except ValueError:  # a cursor that is not ours
            _say(respond, "That button does not name a list; run the command again.")

    app.action(ids.NEXT_PAGE)(ack=just_ack, lazy=[next_page])
