"""What happened to requests, refunds and disputes: filters, periods, page cursors, a request's timeline. Pure."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from domain.models import Dispute, Payment, Refund, RefundRequest

REQUEST_STATUSES = ("pending", "approved", "sent", "succeeded", "failed", "canceled", "rejected", "expired")
# Words a person may use for several statuses at once.
STATUS_GROUPS = {
    "open": ("pending", "approved", "sent"),
    "done": ("succeeded", "failed", "canceled", "rejected", "expired"),
}
DISPUTE_OPEN = ("needs_response", "under_review", "warning_needs_response", "warning_under_review")
PERIOD_DAYS = {"24h": 1, "7d": 7, "30d": 30, "90d": 90}
PERIODS = ("today", "24h", "7d", "30d", "90d", "month", "last-month")
PAGE_SIZE = 10  # lines per page in Slack
MAX_LIMIT = 200  # API page size, at most
DEFAULT_LIMIT = 50


class CursorError(ValueError):
    """The cursor is not one we handed out."""


@dataclass(frozen=True, slots=True)
class Filter:
    """Which rows a list shows; the same for Slack lists, the Home tab and the API."""

    statuses: tuple[str, ...] = ()
    requested_by: str | None = None  # requests (and refunds made by requests); disputes: their owner
    since: datetime | None = None
    until: datetime | None = None
    unowned_too: bool = False  # disputes: also those nobody owns


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page starts: after the row with this sort key and id (newest first, or soonest deadline first)."""

    at: datetime
    id: str


@dataclass(frozen=True, slots=True)
class Page:
    """One page of rows, and where the next one starts (None: this was the last)."""

    rows: tuple[Any, ...]
    next: Position | None = None


def statuses_for(word: str) -> tuple[str, ...] | None:
    """The request statuses a word names (`open`, `succeeded`…), or None when it names none."""
    word = word.lower()
    if word in STATUS_GROUPS:
        return STATUS_GROUPS[word]
    return (word,) if word in REQUEST_STATUSES else None


def period_range(period: str, now: datetime) -> tuple[datetime, datetime | None]:
    """(since, until) of a named period in UTC; until None means up to now."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "today":
        return day, None
    if period == "month":
        return day.replace(day=1), None
    if period == "last-month":
        this_month = day.replace(day=1)
        return (this_month - timedelta(days=1)).replace(day=1), this_month
    return now - timedelta(days=PERIOD_DAYS[period]), None


def encode_cursor(position: Position) -> str:
    """An opaque cursor for a position (clients must not build or read them)."""
    raw = f"{position.at.astimezone(UTC).isoformat()}|{position.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    """The position a cursor names; CursorError when it is not one we made."""
    if not cursor or len(cursor) > 200:
        raise CursorError("cursor is empty or too long")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at_text, _, ident = raw.partition("|")
        at = datetime.fromisoformat(at_text)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise CursorError("cursor is not one this API handed out") from exc
    if at.tzinfo is None or not ident or len(ident) > 255:
        raise CursorError("cursor is not one this API handed out")
    return Position(at, ident)


# --- a request's timeline, read from the audit log ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """A line of the audit log about one request."""

    at: datetime
    actor: str
    surface: str
    action: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Step:
    """One step in a request's life: what happened, when, by whom, and any words that came with it."""

    at: datetime
    step: str
    actor: str | None
    note: str | None = None


# Audit action → the step people read. Actions not named here (future ones) are left out of timelines.
_STEPS = {
    "request.created": "asked",
    "request.approval_added": "approval_added",
    "request.approved": "approved",
    "request.rejected": "rejected",
    "request.expired": "expired",
    "refund.requested_from_stripe": "sent",
    "refund.unconfirmed": "unconfirmed",
    "refund.refused_by_stripe": "refused",
    "request.sent": "refund_pending",
    "request.succeeded": "succeeded",
    "request.failed": "failed",
    "request.canceled": "canceled",
}
_SYSTEM = frozenset({"system", "stripe"})


def timeline(entries: Iterable[AuditEntry]) -> list[Step]:
    """The steps of a request, oldest first, from its audit records."""
    steps = []
    for e in sorted(entries, key=lambda x: x.at):
        step = _STEPS.get(e.action)
        if step is None:
            continue
        note = e.details.get("reason") if step == "rejected" else None
        if step in {"refund_pending", "succeeded", "failed", "canceled"}:
            note = e.details.get("refund")
        if step in {"unconfirmed", "refused"}:
            note = e.details.get("error")
        if step == "approved" and e.details.get("why"):
            note = str(e.details["why"])
        steps.append(Step(e.at, step, None if e.actor in _SYSTEM else e.actor, str(note) if note else None))
    return steps


def is_api_requester(requested_by: str) -> bool:
    """Whether a request was filed by another system through an API key (requested_by `api:NAME`)."""
    return requested_by.startswith("api:")


@dataclass(frozen=True, slots=True)
class RequestDetail:
    """A request in full: its record, its timeline, its refund, its payment, and where its approval message is."""

    request: RefundRequest
    steps: tuple[Step, ...]
    refund: Refund | None = None
    payment: Payment | None = None
    approval_message: tuple[str, str] | None = None  # (channel, ts)
    permalink: str | None = None


@dataclass(frozen=True, slots=True)
class Home:
    """What one person's Home tab shows: chosen by their roles (the same ones every other surface checks)."""

    user: str
    viewer: bool = False
    requester: bool = False
    approver: bool = False
    oncall: bool = False
    waiting: tuple[RefundRequest, ...] = ()  # approvers: requests waiting for their decision
    waiting_total: int = 0
    mine: tuple[RefundRequest, ...] = ()  # their own open and recent requests
    mine_total: int = 0
    disputes: tuple[Dispute, ...] = ()  # on-call: open disputes they own or nobody owns, by deadline
    disputes_total: int = 0
    notice: str | None = None  # what just happened (a refused click), shown first

    @property
    def sections(self) -> frozenset[str]:
        """The parts of the desk this tab shows (a change to one of them refreshes the tab)."""
        shown = set()
        if self.viewer and self.approver:
            shown.add("approvals")
        if self.viewer and self.oncall:
            shown.add("disputes")
        return frozenset(shown)
