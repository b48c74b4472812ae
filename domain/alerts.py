"""On-call rules, pure: evidence reminders, incident state for rate alerts, routing, relative times."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

AWAITING_EVIDENCE = frozenset({"needs_response", "warning_needs_response"})
REMINDERS = (("72h", timedelta(hours=72)), ("24h", timedelta(hours=24)))


def reminders_due(
    *, due_by: datetime | None, status: str, evidence_submitted: bool, sent: set[str], now: datetime
) -> list[str]:
    """Which evidence reminders to send now: at 72 h and 24 h before the deadline, once each.

    None once the dispute no longer needs a response, evidence is in, or the deadline passed; a
    dispute first seen with less than 24 h left gets only the 24 h reminder.
    """
    if due_by is None or status not in AWAITING_EVIDENCE or evidence_submitted or now >= due_by:
        return []
    left = due_by - now
    due = [kind for kind, before in REMINDERS if left <= before and kind not in sent]
    # Inside the last day the 72 h reminder would only repeat the 24 h one.
    return ["24h"] if "24h" in due else due


def relative(delta: timedelta) -> str:
    """'in 2 days 3 h', '5 h ago', 'in 40 min'."""
    seconds = int(delta.total_seconds())
    future = seconds >= 0
    seconds = abs(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        text = f"{days} day{'s' if days > 1 else ''}" + (f" {hours} h" if hours else "")
    elif hours:
        text = f"{hours} h" + (f" {minutes} min" if minutes and hours < 6 else "")
    else:
        text = f"{max(minutes, 1)} min"
    return f"in {text}" if future else f"{text} ago"


@dataclass(frozen=True, slots=True)
class Window:
    """Outcomes counted over the sliding window."""

    attempts: int
    failures: int
    top_codes: tuple[tuple[str, int], ...] = ()

    @property
    def rate(self) -> float:
        """Failures over attempts (0 when nothing happened)."""
        return self.failures / self.attempts if self.attempts else 0.0


@dataclass(frozen=True, slots=True)
class Limits:
    """When a rate is an incident."""

    rate: float  # e.g. 0.05: strictly above it is an incident
    min_attempts: int
    window: timedelta
    renotify_factor: float = 1.5  # a worse rate is told again only this much worse...
    renotify_every: timedelta = timedelta(minutes=10)  # ...and not more often than this


@dataclass(frozen=True, slots=True)
class Incident:
    """An open incident as stored."""

    opened_at: datetime
    notified_rate: float | None
    notified_at: datetime
    healthy_since: datetime | None


@dataclass(frozen=True, slots=True)
class Step:
    """What to do after looking at the window: open, worse, recover, or nothing (maybe noting health)."""

    action: str  # 'none', 'open', 'worse', 'recover'
    healthy_since: datetime | None = None


def breached(window: Window, limits: Limits) -> bool:
    """Whether the window is an incident: enough volume and a rate strictly above the limit."""
    return window.attempts >= limits.min_attempts and window.rate > limits.rate


def incident_step(incident: Incident | None, window: Window, limits: Limits, now: datetime) -> Step:
    """One alert per incident, an update only when clearly worse, recovery after a full healthy window."""
    bad = breached(window, limits)
    if incident is None:
        return Step("open") if bad else Step("none")
    if bad:
        worse = (
            incident.notified_rate is not None
            and window.rate >= incident.notified_rate * limits.renotify_factor
            and now - incident.notified_at >= limits.renotify_every
        )
        return Step("worse" if worse else "none", healthy_since=None)
    since = incident.healthy_since or now
    if now - since >= limits.window:
        return Step("recover", healthy_since=since)
    return Step("none", healthy_since=since)


def parse_routes(text: str) -> dict[tuple[str, str], str]:
    """ALERT_ROUTES: 'acct_1=C0AAA,acct_2/disputes=C0BBB' → {(account, kind): channel}; kind '*' for all."""
    routes: dict[tuple[str, str], str] = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        target, _, channel = entry.partition("=")
        account, _, kind = target.strip().partition("/")
        if not account.startswith("acct_") or not channel.strip() or kind not in {"", "disputes", "alerts"}:
            raise ValueError(f"'{entry}' should look like acct_123=C0123ABC or acct_123/disputes=C0123ABC")
        routes[(account, kind or "*")] = channel.strip()
    return routes


def channel_for(
    kind: str, account: str | None, routes: Mapping[tuple[str, str], str], defaults: Mapping[str, str | None]
) -> str | None:
    """The channel for an alert kind ('disputes' or 'alerts'), overridden per Connect account."""
    if account:
        for key in ((account, kind), (account, "*")):
            if key in routes:
                return routes[key]
    return defaults.get(kind)


def backlog_step(
    incident: Incident | None, *, waited: timedelta, limit: timedelta, window: timedelta, now: datetime
) -> Step:
    """The event backlog as an incident: open once the oldest due urgent event has waited longer than
    `limit`, recover after a full `window` within it (one alert, one recovery, as for the rates)."""
    bad = waited > limit
    if incident is None:
        return Step("open") if bad else Step("none")
    if bad:
        return Step("none", healthy_since=None)
    since = incident.healthy_since or now
    if now - since >= window:
        return Step("recover", healthy_since=since)
    return Step("none", healthy_since=since)
