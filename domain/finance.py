"""Reconciliation rules, pure: what a balance transaction is, what a difference between Stripe and our
records means and whether it is worth a person's time, what changed since the last run.

Money follows Stripe's balance transactions: signed minor units as they move the balance (a charge
is positive, a refund or a payout negative). `actual` is what Stripe says moved, `expected` what
our records say should have moved, and a difference is actual minus expected.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from domain.ids import kind_of

# Categories of what moved a balance, in the order reports show them.
CATEGORIES = (
    "charges",
    "refunds",
    "refund_reversals",
    "dispute_withdrawals",
    "dispute_reinstatements",
    "fees",
    "payouts",
    "other",
)
# Categories whose every balance transaction is matched with a record of ours; fees and the rest
# are Stripe's alone (we keep no record of them) and are shown, never compared.
COMPARED = frozenset(CATEGORIES) - {"fees", "other"}

_BY_TYPE = {
    "charge": "charges",
    "payment": "charges",
    "refund": "refunds",
    "payment_refund": "refunds",
    "refund_failure": "refund_reversals",
    "payment_failure_refund": "refund_reversals",
    "payout": "payouts",
    "payout_cancel": "payouts",
    "payout_failure": "payouts",
    "stripe_fee": "fees",
    "tax_fee": "fees",
}
_BY_REPORTING_CATEGORY = {
    "dispute": "dispute_withdrawals",
    "dispute_reversal": "dispute_reinstatements",
    "fee": "fees",
}

# What a finding is about (its kind), and what probably caused it (its cause).
KINDS = (
    "charge_not_recorded",
    "refund_not_recorded",
    "dispute_not_recorded",
    "payout_not_recorded",
    "refund_missing_in_stripe",
    "request_refund_missing",
    "refund_status_differs",
    "dispute_status_differs",
    "amount_differs",
    "currency_differs",
    "payout_total_differs",
)
CAUSES = (
    "missed_webhook",
    "made_outside_bot",
    "rounding",
    "changed_locally",
    "refund_failed_unseen",
    "dispute_won_unseen",
    "refund_never_made",
    "payout_contents",
)

_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def category_of(txn_type: str | None, reporting_category: str | None) -> str:
    """The category of a balance transaction, by Stripe's reporting category first, then its type."""
    if reporting_category in _BY_REPORTING_CATEGORY:
        return _BY_REPORTING_CATEGORY[reporting_category]
    return _BY_TYPE.get(txn_type or "", "other")


def _ref(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.get("id") if isinstance(value, Mapping) else None


@dataclass(frozen=True, slots=True)
class Txn:
    """A balance transaction, reduced to what reconciliation reads (stable across API versions)."""

    id: str
    type: str
    category: str
    source: str | None
    amount: int
    fee: int
    net: int
    currency: str
    converted: bool  # settled in another currency than the object's: amounts are not comparable
    created: int


def txn_from_stripe(obj: Mapping[str, Any]) -> Txn:
    """A Txn from a Stripe balance transaction (its source may be an id or an expanded object)."""
    amount = int(obj.get("amount") or 0)
    fee = int(obj.get("fee") or 0)
    return Txn(
        id=str(obj["id"]),
        type=str(obj.get("type") or ""),
        category=category_of(obj.get("type"), obj.get("reporting_category")),
        source=_ref(obj.get("source")),
        amount=amount,
        fee=fee,
        net=int(obj["net"]) if obj.get("net") is not None else amount - fee,
        currency=str(obj.get("currency") or "").lower(),
        converted=obj.get("exchange_rate") is not None,
        created=int(obj.get("created") or 0),
    )


@dataclass(frozen=True, slots=True)
class Payout:
    """A Stripe payout as last seen."""

    id: str
    account: str | None
    livemode: bool
    amount: int
    currency: str
    status: str
    automatic: bool
    arrival_date: datetime | None
    failure_code: str | None
    failure_message: str | None
    stripe_created: datetime
    observed_at: datetime


def payout_from_stripe(obj: Mapping[str, Any], *, account: str | None, observed_at: datetime) -> Payout:
    """A Payout from a Stripe payout object (every field read here exists since 2018)."""

    def when(value: Any) -> datetime | None:
        return datetime.fromtimestamp(value, UTC) if isinstance(value, int) and value > 0 else None

    return Payout(
        id=str(obj["id"]),
        account=account,
        livemode=bool(obj.get("livemode")),
        amount=int(obj.get("amount") or 0),
        currency=str(obj.get("currency") or "usd").lower(),
        status=str(obj.get("status") or "pending"),
        automatic=obj.get("automatic") is not False,
        arrival_date=when(obj.get("arrival_date")),
        failure_code=obj.get("failure_code"),
        failure_message=obj.get("failure_message"),
        stripe_created=when(obj.get("created")) or observed_at,
        observed_at=observed_at,
    )


def newer_payout(current: Payout | None, incoming: Payout) -> bool:
    """Whether a payout snapshot should replace what we hold: newer, and not a step back to in-flight."""
    if current is None:
        return True
    if incoming.observed_at < current.observed_at:
        return False
    final = {"paid", "failed", "canceled"}
    if current.status in final and incoming.status not in final:
        return False  # a late `payout.updated` of an in-flight payout never undoes its outcome
    return (incoming.status, incoming.amount, incoming.failure_code, incoming.arrival_date) != (
        current.status,
        current.amount,
        current.failure_code,
        current.arrival_date,
    )


@dataclass(frozen=True, slots=True)
class Item:
    """One balance transaction beside what our records say of it, or a record of ours Stripe lacks.

    expected None: we hold no record of the transaction's source. txn_id None: a record of ours with
    no balance transaction (local_kind says which check found it).
    """

    category: str
    currency: str
    actual: int
    expected: int | None
    txn_id: str | None = None
    source: str | None = None
    converted: bool = False
    local_currency: str | None = None
    local_amount: int | None = None
    local_status: str | None = None
    related: tuple[str, ...] = ()
    request_id: int | None = None
    local_kind: str | None = None
    made_by_bot: bool | None = None  # from the source's metadata, when it was looked at


@dataclass(frozen=True, slots=True)
class Finding:
    """A discrepancy: what it is, about which id, how much, and whether it is above the tolerance."""

    kind: str
    subject: str
    currency: str
    expected: int
    actual: int
    flagged: bool
    cause: str
    stripe_ids: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def difference(self) -> int:
        """Actual minus expected: positive when Stripe's balance moved more in our favour than we think."""
        return self.actual - self.expected

    @property
    def key(self) -> tuple[str, str, str]:
        """What a later run matches this finding by, to say it is resolved."""
        return (self.kind, self.subject, self.currency)


def tolerance_for(tolerances: Mapping[str, int], currency: str) -> int:
    """The tolerance of a currency in minor units; a currency without one has none: every difference counts."""
    return tolerances.get(currency.lower(), 0)


def above(difference: int, currency: str, tolerances: Mapping[str, int]) -> bool:
    """Whether a difference is above the currency's tolerance (flagged)."""
    return abs(difference) > tolerance_for(tolerances, currency)


_NOT_RECORDED = {
    "charges": "charge_not_recorded",
    "refunds": "refund_not_recorded",
    "refund_reversals": "refund_not_recorded",
    "dispute_withdrawals": "dispute_not_recorded",
    "dispute_reinstatements": "dispute_not_recorded",
    "payouts": "payout_not_recorded",
}


def classify(item: Item, tolerances: Mapping[str, int]) -> Finding | None:
    """The finding an item makes, if any: a missing record, a status, currency or amount that differs."""
    ids = tuple(i for i in (item.txn_id, item.source, *item.related) if i)
    if item.request_id is not None:
        ids += (f"request:{item.request_id}",)
    subject = item.source or item.txn_id or "?"
    details: dict[str, Any] = {}
    if item.local_kind is not None:
        # A record of ours that Stripe has no trace of: our side moved money, Stripe's did not.
        expected = item.expected or 0
        cause = "refund_never_made"
        return Finding(
            item.local_kind,
            subject,
            item.currency,
            expected,
            0,
            above(-expected, item.currency, tolerances),
            cause,
            ids,
            {"status": item.local_status} if item.local_status else {},
        )
    if item.category not in COMPARED:
        return None
    if item.expected is None:
        kind = _NOT_RECORDED[item.category]
        cause = "made_outside_bot" if item.made_by_bot is False and kind == "refund_not_recorded" else "missed_webhook"
        if item.made_by_bot is not None:
            details["made_by_bot"] = item.made_by_bot
        return Finding(
            kind,
            subject,
            item.currency,
            0,
            item.actual,
            above(item.actual, item.currency, tolerances),
            cause,
            ids,
            details,
        )
    if item.converted:
        return None  # presence checked above; a converted amount cannot be compared with ours
    if item.local_currency is not None and item.local_currency != item.currency:
        details = {"our_currency": item.local_currency, "our_amount": item.local_amount}
        return Finding(
            "currency_differs",
            subject,
            item.currency,
            0,
            item.actual,
            above(item.actual, item.currency, tolerances),
            "changed_locally",
            ids,
            details,
        )
    if item.expected == item.actual:
        return None
    difference = item.actual - item.expected
    if item.category == "refund_reversals" and item.expected == 0:
        kind, cause = "refund_status_differs", "refund_failed_unseen"
        details = {"our_status": item.local_status}
    elif item.category == "dispute_reinstatements" and item.expected == 0:
        kind, cause = "dispute_status_differs", "dispute_won_unseen"
        details = {"our_status": item.local_status}
    else:
        kind = "amount_differs"
        cause = "rounding" if abs(difference) <= 1 else "changed_locally"
    return Finding(
        kind,
        subject,
        item.currency,
        item.expected,
        item.actual,
        above(difference, item.currency, tolerances),
        cause,
        ids,
        details,
    )


def payout_total_finding(
    payout_id: str, currency: str, payout_amount: int, contents_net: int, tolerances: Mapping[str, int]
) -> Finding | None:
    """A payout whose balance transactions do not add up to the amount paid out."""
    if contents_net == payout_amount:
        return None
    return Finding(
        "payout_total_differs",
        payout_id,
        currency,
        payout_amount,
        contents_net,
        above(contents_net - payout_amount, currency, tolerances),
        "payout_contents",
        (payout_id,),
    )


@dataclass(frozen=True, slots=True)
class Line:
    """One category of one currency: what Stripe moved, what our records say, how many transactions."""

    category: str
    actual: int
    expected: int
    count: int

    @property
    def difference(self) -> int:
        """Actual minus expected."""
        return self.actual - self.expected


@dataclass(frozen=True, slots=True)
class CurrencyTotals:
    """A currency's lines in category order."""

    currency: str
    lines: tuple[Line, ...]

    @property
    def actual(self) -> int:
        """Net balance movement per Stripe."""
        return sum(line.actual for line in self.lines)

    @property
    def expected(self) -> int:
        """Net movement per our records (fees and other: Stripe's figure, as we keep none)."""
        return sum(line.expected for line in self.lines)

    @property
    def difference(self) -> int:
        """Actual minus expected, all categories."""
        return self.actual - self.expected


def totals(rows: Iterable[tuple[str, str, int, int, int]]) -> tuple[CurrencyTotals, ...]:
    """(currency, category, actual, expected, count) rows, summed per currency in category order."""
    by: dict[str, dict[str, Line]] = {}
    for currency, category, actual, expected, count in rows:
        lines = by.setdefault(currency, {})
        old = lines.get(category, Line(category, 0, 0, 0))
        lines[category] = Line(category, old.actual + actual, old.expected + expected, old.count + count)
    order = {c: i for i, c in enumerate(CATEGORIES)}
    return tuple(
        CurrencyTotals(currency, tuple(sorted(lines.values(), key=lambda line: order.get(line.category, 99))))
        for currency, lines in sorted(by.items())
    )


def totals_to_json(all_totals: Iterable[CurrencyTotals]) -> list[dict[str, Any]]:
    """Totals as stored with a run (and printed by `reconcile --format json`)."""
    return [
        {
            "currency": t.currency,
            "lines": [
                {"category": ln.category, "stripe": ln.actual, "ours": ln.expected, "count": ln.count} for ln in t.lines
            ],
        }
        for t in all_totals
    ]


def totals_from_json(data: Iterable[Mapping[str, Any]]) -> tuple[CurrencyTotals, ...]:
    """Totals as stored with a run."""
    return tuple(
        CurrencyTotals(
            d["currency"],
            tuple(Line(ln["category"], ln["stripe"], ln["ours"], ln["count"]) for ln in d.get("lines", ())),
        )
        for d in data
    )


def is_flagged(
    findings: Iterable[Finding], all_totals: Iterable[CurrencyTotals], tolerances: Mapping[str, int]
) -> bool:
    """A run is flagged when any finding is above its tolerance, or its small ones add up to more than it."""
    if any(f.flagged for f in findings):
        return True
    return any(above(t.difference, t.currency, tolerances) for t in all_totals)


# --- days and months: UTC midnight to UTC midnight ------------------------------------------------------


def parse_day(text: str) -> date:
    """YYYY-MM-DD, or ValueError with a message fit to show."""
    found = _DAY.match(text.strip())
    if not found:
        raise ValueError(f"“{text.strip()[:20]}” is not a date: write it as YYYY-MM-DD, like 2026-11-30.")
    try:
        return date(int(found.group(1)), int(found.group(2)), int(found.group(3)))
    except ValueError:
        raise ValueError(f"{text.strip()} is not a day of the calendar.") from None


def parse_month(text: str) -> tuple[int, int]:
    """YYYY-MM as (year, month), or ValueError with a message fit to show."""
    found = _MONTH.match(text.strip())
    if not found or not 1 <= int(found.group(2)) <= 12 or int(found.group(1)) < 2000:
        raise ValueError(f"“{text.strip()[:20]}” is not a month: write it as YYYY-MM, like 2026-11.")
    return int(found.group(1)), int(found.group(2))


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """[start, end) of a UTC day."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def month_bounds(year: int, month: int) -> tuple[datetime, datetime]:
    """[start, end) of a UTC calendar month."""
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def previous_day(now: datetime) -> date:
    """The UTC day before `now`'s."""
    return (now.astimezone(UTC) - timedelta(days=1)).date()


def previous_month(now: datetime) -> tuple[int, int]:
    """The calendar month before `now`'s (UTC)."""
    today = now.astimezone(UTC)
    return (today.year - 1, 12) if today.month == 1 else (today.year, today.month - 1)


def month_label(year: int, month: int) -> str:
    """2026-11."""
    return f"{year:04d}-{month:02d}"


# --- Dashboard links for what a finding names -----------------------------------------------------------

DASHBOARD = "https://dashboard.stripe.com"


def dashboard_link(stripe_id: str, *, livemode: bool, account: str | None) -> str:
    """Where in the Dashboard a person looks at an id: payments, disputes, payouts, or a search."""
    parts = [DASHBOARD, *([account] if account else []), *([] if livemode else ["test"])]
    kind = kind_of(stripe_id)
    if kind == "payment":
        parts += ["payments", stripe_id]
    elif kind == "dispute":
        parts += ["disputes", stripe_id]
    elif stripe_id.startswith("po_"):
        parts += ["payouts", stripe_id]
    else:  # refunds and balance transactions have no page of their own: the search finds them
        parts.append(f"search?query={stripe_id}")
    return "/".join(parts)


# --- runs as stored -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Run:
    """A reconciliation run of a day (per account) or of a payout, as stored."""

    id: int
    scope: str
    account: str | None
    day: date | None
    payout_id: str | None
    status: str
    flagged: bool
    current: bool
    txn_count: int
    totals: list[dict[str, Any]]
    changes: dict[str, Any]
    replaces: int | None
    error: str | None
    started_via: str
    started_by: str | None
    started_at: datetime
    finished_at: datetime | None

    @property
    def currency_totals(self) -> tuple[CurrencyTotals, ...]:
        """The stored totals, per currency."""
        return totals_from_json(self.totals)

    @property
    def label(self) -> str:
        """'2026-11-30' or 'payout po_…'."""
        return str(self.day) if self.scope == "day" else f"payout {self.payout_id}"


@dataclass(frozen=True, slots=True)
class StoredFinding:
    """A finding as stored with its run."""

    id: int
    run_id: int
    kind: str
    subject: str
    currency: str
    expected: int
    actual: int
    difference: int
    flagged: bool
    cause: str
    stripe_ids: list[str]
    details: dict[str, Any]
    resolved_at: datetime | None


@dataclass(frozen=True, slots=True)
class RunChanges:
    """What a re-run changed since the run it replaced (lists cut to a readable length, counts whole)."""

    replaced: int | None = None
    resolved: tuple[tuple[str, str, str], ...] = ()
    new: tuple[tuple[str, str, str], ...] = ()
    resolved_count: int = 0
    new_count: int = 0
    unchanged: int = 0

    @property
    def any(self) -> bool:
        """Whether anything changed."""
        return bool(self.resolved_count or self.new_count)

    def to_json(self) -> dict[str, Any]:
        """As stored with the run."""
        return {
            "replaced": self.replaced,
            "resolved": [list(k) for k in self.resolved],
            "new": [list(k) for k in self.new],
            "resolved_count": self.resolved_count,
            "new_count": self.new_count,
            "unchanged": self.unchanged,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunChanges:
        """As stored with the run."""
        return cls(
            data.get("replaced"),
            tuple(tuple(k) for k in data.get("resolved", ())),  # type: ignore[misc]
            tuple(tuple(k) for k in data.get("new", ())),  # type: ignore[misc]
            int(data.get("resolved_count", 0)),
            int(data.get("new_count", 0)),
            int(data.get("unchanged", 0)),
        )
