"""`/refunds recon [day]` and `/refunds export YYYY-MM`: translate, call one service, reply."""

from __future__ import annotations

import logging

from slack_bolt import Ack, Respond

from bot.background import later
from domain.clock import utcnow
from domain.commands import Export, Recon
from domain.errors import DeskError
from domain.finance import month_label, previous_day
from messages import finance as fm
from services import exports, reconciliation
from services.deps import Deps

log = logging.getLogger(__name__)


def answer(ack: Ack, respond: Respond, cmd: Recon | Export, user: str, deps: Deps) -> None:
    """A day's reconciliation from the store, inside the ack; an export after it."""
    if isinstance(cmd, Recon):
        try:
            allowed = deps.roles.may_view(user)
        except DeskError as exc:
            ack(response_type="ephemeral", text=exc.message)
            return
        if not allowed:
            ack(response_type="ephemeral", text="Reconciliation results are for the people in VIEWERS.")
            return
        day = cmd.day or previous_day(utcnow())
        result = reconciliation.day_result(deps.pool, day)
        ack(response_type="ephemeral", **fm.recon_answer(day, result, livemode=deps.settings.stripe_livemode))
        return
    label = month_label(cmd.year, cmd.month)
    # Roles may need Slack, and the file may be large: after the ack.
    ack(response_type="ephemeral", text=f"Preparing the export of {label}; it comes by DM.")
    later(_export, respond, cmd, user, deps)


def _export(respond: Respond, cmd: Export, user: str, deps: Deps) -> None:
    label = month_label(cmd.year, cmd.month)
    try:
        written = exports.send_by_dm(deps.pool, deps.slack, deps.roles, user, cmd.year, cmd.month, now=utcnow())
    except DeskError as exc:
        respond(replace_original=True, response_type="ephemeral", text=f"No export of {label}: {exc.message}")
        return
    respond(
        replace_original=True,
        response_type="ephemeral",
        text=f"The export of {label} is in your DMs ({written.rows:,} rows).",
    )
