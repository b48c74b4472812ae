"""The `/refunds` command language, parsed without I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass

ID_KINDS = {
    "pi": "payment",
    "ch": "payment",
    "py": "payment",
    "re": "refund",
    "pyr": "refund",
    "dp": "dispute",
    "du": "dispute",
}
_ID_RE = re.compile(r"\b((?:pi|ch|pyr|py|re|dp|du)_[A-Za-z0-9]{6,250})\b")
_LOOKS_LIKE_ID = re.compile(r"^[a-z]{2,5}_\S*$")

USAGE = """\
*Look up a payment, refund or dispute*
`/refunds pi_3MtwBwLkdIwHu7ix28a3tqPa` a payment intent
`/refunds ch_3MtwBwLkdIwHu7ix2Xw0YB5M` a charge
`/refunds re_3MtwBwLkdIwHu7ix2hTe6NNb` a refund
`/refunds dp_1MtwDSLkdIwHu7ixeMtz9b7q` a dispute (or `du_…`)
You can also paste a Stripe Dashboard link.
`/refunds help` shows this."""


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
        return ID_KINDS[self.stripe_id.split("_", 1)[0]]


Command = Help | Lookup


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
    if "dashboard.stripe.com" in first or len(words) == 1:
        found = _ID_RE.search(first)
        if found and (found.group(1) == first or "/" in first):
            return Lookup(found.group(1))
    if len(words) == 1 and _LOOKS_LIKE_ID.match(first):
        return Help(f"`{_short(first)}` is not a payment, refund or dispute id I know.")
    if len(words) > 1 and _ID_RE.fullmatch(first):
        return Help(f"Just the id, please: `/refunds {first}`.")
    return Help(f"I don't understand “{_short(cleaned)}”.")
