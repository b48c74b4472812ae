"""The `/refunds` command language, parsed without I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from domain.connect import ACCOUNT_ID, account_in
from domain.finance import parse_day, parse_month
from domain.history import PERIODS as HISTORY_PERIODS
from domain.history import statuses_for
from domain.ids import KINDS, kind_of
from domain.money import could_be_amount, is_currency_code

_ID_RE = re.compile(r"\b((?:" + "|".join(sorted(KINDS, key=len, reverse=True)) + r")_[A-Za-z0-9]{6,250})\b")
_LOOKS_LIKE_ID = re.compile(r"^[a-z]{2,5}_\S*$")

USAGE = """\
*Look up a payment, refund or dispute*
`/refunds pi_3MtwBwLkdIwHu7ix28a3tqPa` a payment intent
`/refunds ch_3MtwBwLkdIwHu7ix2Xw0YB5M` a charge
`/refunds re_3MtwBwLkdIwHu7ix2hTe6NNb` a refund
`/refunds dp_1MtwDSLkdIwHu7ixeMtz9b7q` a dispute (or `du_…`)
You can also paste a Stripe Dashboard link. A connected account's: `/refunds pi_… acct_…`
*Ask for a refund* (an approver approves it in the approvals channel)
`/refunds request pi_3MtwBwLkdIwHu7ix28a3tqPa 25.50 duplicate charged twice at checkout`
`/refunds request pi_3MtwBwLkdIwHu7ix28a3tqPa all` everything still refundable
  amount in the payment's currency (`25.50` or `25,50`); reason `requested_by_customer` (default), `duplicate` \
or `fraudulent`; then a note. A refund that needs no approver shows its amount and asks you to confirm.
*Follow up*
`/refunds pending` open requests · `/refunds stats 7d` counts and sums by status (`today`, `7d`, `30d`, `month`)
`/refunds #42` one request in full · `/refunds mine [status] [period]` yours
`/refunds history [status] [period] [@person]` everyone's · `/refunds disputes [open|all]` soonest deadline first
*Finance* `/refunds recon [2026-11-30]` a day's reconciliation (yesterday by default) · \
`/refunds export 2026-11` the month's refunds, disputes and audit log by DM (approvers)
`/refunds help` shows this."""

REASONS = {
    "requested_by_customer": "requested_by_customer",
    "customer": "requested_by_customer",
    "requested": "requested_by_customer",
    "duplicate": "duplicate",
    "dup": "duplicate",
    "fraudulent": "fraudulent",
    "fraud": "fraudulent",
}
PERIODS = ("today", "24h", "7d", "30d", "90d", "month")
ALL_WORDS = frozenset({"all", "full", "everything"})
MAX_NOTE = 2000


@dataclass(frozen=True, slots=True)
class Help:
    """Show usage; `problem` explains what was wrong with the input, if anything."""

    problem: str | None = None


@dataclass(frozen=True, slots=True)
class Lookup:
    """Look up a Stripe object by id."""

    stripe_id: str
    account: str | None = None  # the Connect account that owns it, when the person named it

    @property
    def kind(self) -> str:
        """payment, refund or dispute."""
        return kind_of(self.stripe_id) or "payment"


@dataclass(frozen=True, slots=True)
class RequestRefund:
    """Ask for a refund of a payment; amount is the person's text, parsed once the currency is known.

    amount_text None means everything still refundable, which a person asks for explicitly (`all`).
    """

    payment_id: str
    amount_text: str | None = None
    reason: str = "requested_by_customer"
    note: str | None = None
    account: str | None = None  # the Connect account that owns the payment, when the person named it


@dataclass(frozen=True, slots=True)
class Pending:
    """List open refund requests."""


@dataclass(frozen=True, slots=True)
class Stats:
    """Counts and sums of refund requests by status over a period."""

    period: str = "30d"


@dataclass(frozen=True, slots=True)
class ShowRequest:
    """One refund request in full, with its timeline (`/refunds #42`)."""

    number: int


@dataclass(frozen=True, slots=True)
class Mine:
    """The asker's own requests, newest first."""

    statuses: tuple[str, ...] = ()
    period: str | None = None


@dataclass(frozen=True, slots=True)
class History:
    """Everyone's requests (approvers and admins), optionally one person's."""

    statuses: tuple[str, ...] = ()
    period: str | None = None
    user: str | None = None


@dataclass(frozen=True, slots=True)
class Disputes:
    """Disputes, the soonest evidence deadline first: `open` ones, or `all`."""

    scope: str = "open"


@dataclass(frozen=True, slots=True)
class Recon:
    """A day's reconciliation result (None: yesterday, UTC)."""

    day: date | None = None


@dataclass(frozen=True, slots=True)
class Export:
    """The month's refunds, disputes and audit records, sent by DM (approvers and admins)."""

    year: int
    month: int


Command = Help | Lookup | RequestRefund | Pending | Stats | ShowRequest | Mine | History | Disputes | Recon | Export

REQUEST_USAGE = "Write it as `/refunds request pi_… amount [reason] [note]`."


def _parse_request(words: list[str]) -> Command:
    if not words:
        return Help(f"Which payment? {REQUEST_USAGE}")
    found = _ID_RE.search(words[0])
    if not found or kind_of(found.group(1)) != "payment":
        return Help(f"`{_short(words[0])}` is not a payment id (`pi_…` or `ch_…`). {REQUEST_USAGE}")
    rest = words[1:]
    # A connected account's payment: named after the id (`pi_… acct_…`) or inside a Dashboard link.
    account = account_in(words[0]) if "/" in words[0] else None
    if rest and ACCOUNT_ID.fullmatch(rest[0]):
        account = rest.pop(0)
    if not rest or rest[0].lower() in REASONS:
        # Everything refundable is never the silent default: a forgotten amount must not refund it all.
        return Help(f"How much? {REQUEST_USAGE} Use `all` for everything still refundable.")
    token = rest.pop(0)
    amount: str | None
    if token.lower() in ALL_WORDS:
        amount = None
    elif could_be_amount(token):
        amount = token
        # "25.50 USD": the code may follow the number as its own word.
        if rest and is_currency_code(rest[0]):
            amount = f"{token} {rest.pop(0)}"
    else:
        return Help(
            f"“{_short(token)}” is not an amount. Write it like `25.50` (a comma works for decimals "
            f"too: `25,50`), or `all` for everything still refundable. {REQUEST_USAGE}"
        )
    reason = "requested_by_customer"
    if rest and rest[0].lower() in REASONS:
        reason = REASONS[rest.pop(0).lower()]
    note = " ".join(rest).strip() or None
    if note and len(note) > MAX_NOTE:
        return Help("The note is too long: keep it under 2,000 characters.")
    return RequestRefund(found.group(1), amount, reason, note, account)


_NUMBER = re.compile(r"^#?([0-9]{1,12})$")
_MENTION = re.compile(r"^@?([UW][A-Z0-9]{2,})$")


def _parse_filters(verb: str, words: list[str], *, people: bool) -> Command:
    """`[status] [period] [@person]` in any order, for `mine` and `history`."""
    statuses: tuple[str, ...] = ()
    period: str | None = None
    user: str | None = None
    for word in words:
        found = statuses_for(word)
        mention = _MENTION.match(word.split("|")[0])
        if found and not statuses:
            statuses = found
        elif word.lower() in HISTORY_PERIODS and period is None:
            period = word.lower()
        elif people and mention and user is None:
            user = mention.group(1)
        else:
            who = " [@person]" if people else ""
            return Help(
                f"`/refunds {verb}` takes [status] [period]{who}: status `open`, `done` or one of pending, approved, "
                f"sent, succeeded, failed, canceled, rejected, expired; period one of {', '.join(HISTORY_PERIODS)}. "
                f"“{_short(word)}” is neither."
            )
    return History(statuses, period, user) if people else Mine(statuses, period)


def _clean(text: str) -> str:
    # Slack wraps pasted links as <url|label> and people paste ids in backticks.
    text = re.sub(r"<([^>|]*)(?:\|[^>]*)?>", r"\1", text)
    return text.replace("`", " ").replace("*", " ").strip()


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _parse_recon(words: list[str]) -> Command:
    """`recon [YYYY-MM-DD]`."""
    if not words:
        return Recon()
    if len(words) > 1:
        return Help("Which day? `/refunds recon` (yesterday) or `/refunds recon 2026-11-30`.")
    try:
        return Recon(parse_day(words[0]))
    except ValueError as exc:
        return Help(f"{exc} `/refunds recon` alone shows yesterday.")


def _parse_export(words: list[str]) -> Command:
    """`export YYYY-MM`."""
    if len(words) != 1:
        return Help("Which month? `/refunds export 2026-11`.")
    try:
        year, month = parse_month(words[0])
    except ValueError as exc:
        return Help(str(exc))
    return Export(year, month)


def parse(text: str | None) -> Command:
    """Parse what followed `/refunds`."""
    cleaned = _clean(text or "")
    if not cleaned or cleaned.lower() in {"help", "-h", "--help", "?", "usage"}:
        return Help()
    words = cleaned.split()
    first = words[0]
    verb = first.lower()
    if verb == "request":
        return _parse_request(words[1:])
    if verb == "pending" and len(words) == 1:
        return Pending()
    if _NUMBER.match(first) and len(words) == 1:
        return ShowRequest(int(_NUMBER.match(first).group(1)))
    if verb == "mine":
        return _parse_filters(verb, words[1:], people=False)
    if verb == "history":
        return _parse_filters(verb, words[1:], people=True)
    if verb == "disputes":
        scope = words[1].lower() if len(words) > 1 else "open"
        if scope not in {"open", "all"} or len(words) > 2:
            return Help("Which disputes? `/refunds disputes` (open ones) or `/refunds disputes all`.")
        return Disputes(scope)
    if verb == "recon":
        return _parse_recon(words[1:])
    if verb == "export":
        return _parse_export(words[1:])
    if verb == "stats":
        period = words[1].lower() if len(words) > 1 else "30d"
        if period not in PERIODS or len(words) > 2:
            return Help(f"Stats over which period? One of {', '.join(PERIODS)}.")
        return Stats(period)
    if "dashboard.stripe.com" in first or len(words) == 1:
        found = _ID_RE.search(first)
        if found and (found.group(1) == first or "/" in first):
            return Lookup(found.group(1), account_in(first) if "/" in first else None)
    if len(words) == 2:
        # `/refunds pi_… acct_…` (or the account first): an object of a connected account.
        ids = [w for w in words if _ID_RE.fullmatch(w)]
        named = [w for w in words if ACCOUNT_ID.fullmatch(w)]
        if len(ids) == 1 and len(named) == 1:
            return Lookup(ids[0], named[0])
    if len(words) == 1 and _LOOKS_LIKE_ID.match(first):
        return Help(f"`{_short(first)}` is not a payment, refund or dispute id I know.")
    if len(words) > 1 and _ID_RE.fullmatch(first):
        return Help(f"Just the id, please: `/refunds {first}`.")
    return Help(f"I don't understand “{_short(cleaned)}”.")
