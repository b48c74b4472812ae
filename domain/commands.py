"""The `/refunds` command language, parsed without I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass

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
You can also paste a Stripe Dashboard link.
*Ask for a refund* (an approver approves it in the approvals channel)
`/refunds request pi_3MtwBwLkdIwHu7ix28a3tqPa 25.50 duplicate charged twice at checkout`
`/refunds request pi_3MtwBwLkdIwHu7ix28a3tqPa all` everything still refundable
  amount in the payment's currency (`25.50` or `25,50`); reason `requested_by_customer` (default), `duplicate` \
or `fraudulent`; then a note. A refund that needs no approver shows its amount and asks you to confirm.
*Follow up*
`/refunds pending` open requests · `/refunds stats 7d` counts and sums by status (`today`, `7d`, `30d`, `month`)
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


@dataclass(frozen=True, slots=True)
class Pending:
    """List open refund requests."""


@dataclass(frozen=True, slots=True)
class Stats:
    """Counts and sums of refund requests by status over a period."""

    period: str = "30d"


Command = Help | Lookup | RequestRefund | Pending | Stats

REQUEST_USAGE = "Write it as `/refunds request pi_… amount [reason] [note]`."


def _parse_request(words: list[str]) -> Command:
    if not words:
        return Help(f"Which payment? {REQUEST_USAGE}")
    found = _ID_RE.search(words[0])
    if not found or kind_of(found.group(1)) != "payment":
        return Help(f"`{_short(words[0])}` is not a payment id (`pi_…` or `ch_…`). {REQUEST_USAGE}")
    rest = words[1:]
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
    return RequestRefund(found.group(1), amount, reason, note)


def _clean(text: str) -> str:
    # Slack wraps pasted links as <url|label> and people paste ids in backticks.
    text = re.sub(r"<([^>|]*)(?:\|[^>]*)?>", r"\1", text)
    return text.replace("`", " ").replace("*", " ").strip()


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
    if verb == "stats":
        period = words[1].lower() if len(words) > 1 else "30d"
        if period not in PERIODS or len(words) > 2:
            return Help(f"Stats over which period? One of {', '.join(PERIODS)}.")
        return Stats(period)
    if "dashboard.stripe.com" in first or len(words) == 1:
        found = _ID_RE.search(first)
        if found and (found.group(1) == first or "/" in first):
            return Lookup(found.group(1))
    if len(words) == 1 and _LOOKS_LIKE_ID.match(first):
        return Help(f"`{_short(first)}` is not a payment, refund or dispute id I know.")
    if len(words) > 1 and _ID_RE.fullmatch(first):
        return Help(f"Just the id, please: `/refunds {first}`.")
    return Help(f"I don't understand “{_short(cleaned)}”.")
