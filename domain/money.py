"""Money as Stripe sends it: integer minor units plus a lowercase ISO currency code."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

# Stripe's zero-decimal currencies: the API amount is already in major units.
ZERO_DECIMAL = frozenset(
    ["bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"]
)
# Three-decimal currencies: 1.000 KWD is 1000 in the API, and Stripe wants the last digit 0.
THREE_DECIMAL = frozenset(["bhd", "jod", "kwd", "omr", "tnd"])
# Stripe represents ISK with two decimals in the API but it has no minor unit in practice:
# amounts must be divisible by 100 and display without decimals.
WHOLE_UNIT_TWO_DECIMAL = frozenset({"isk"})

SYMBOLS = {
    "usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "krw": "₩", "inr": "₹",
    "cny": "CN¥", "aud": "A$", "cad": "CA$", "nzd": "NZ$", "hkd": "HK$", "sgd": "S$",
    "chf": "CHF ", "brl": "R$", "mxn": "MX$", "ils": "₪", "vnd": "₫", "php": "₱", "thb": "฿",
}

_AMOUNT_RE = re.compile(r"^\s*(?P<num>[0-9][0-9_,]*(?:\.[0-9]*)?|\.[0-9]+)\s*$")


class AmountError(ValueError):
    """The amount is not a valid amount for this currency."""


def exponent(currency: str) -> int:
    """How many minor-unit digits Stripe's API uses for this currency."""
    c = currency.lower()
    if c in ZERO_DECIMAL:
        return 0
    if c in THREE_DECIMAL:
        return 3
    return 2


def display_exponent(currency: str) -> int:
    """How many decimals a person expects to see for this currency."""
    c = currency.lower()
    if c in WHOLE_UNIT_TWO_DECIMAL:
        return 0
    return exponent(c)


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in minor units with its currency."""

    amount: int
    currency: str

    def __str__(self) -> str:
        return format_amount(self.amount, self.currency)


def to_major(amount: int, currency: str) -> Decimal:
    """Minor units to a Decimal in major units (exact)."""
    return Decimal(amount).scaleb(-exponent(currency))


def format_amount(amount: int, currency: str) -> str:
    """Render an amount for people: "$12.34", "¥500", "5.120 KWD", "-€1.00"."""
    c = currency.lower()
    sign = "-" if amount < 0 else ""
    major = to_major(abs(amount), c)
    places = display_exponent(c)
    number = f"{major:,.{places}f}"
    symbol = SYMBOLS.get(c)
    if symbol:
        return f"{sign}{symbol}{number}"
    return f"{sign}{number} {c.upper()}"


def parse_amount(text: str, currency: str) -> int:
    """Parse major units typed by a person ("12.34", "1,000", "500") into minor units.

    Raises AmountError with a message fit to show the person.
    """
    c = currency.lower()
    cleaned = text.strip()
    for symbol in {SYMBOLS.get(c, "").strip(), c.upper(), c}:
        if symbol:
            cleaned = cleaned.removeprefix(symbol).removesuffix(symbol).strip()
    match = _AMOUNT_RE.match(cleaned)
    if not match:
        raise AmountError(f"“{text.strip()[:40]}” is not an amount. Write it like 12.50.")
    number = match["num"].replace(",", "").replace("_", "")
    try:
        value = Decimal(number)
    except InvalidOperation as exc:  # pragma: no cover - the regex already guarantees a number
        raise AmountError(f"“{text.strip()[:40]}” is not an amount.") from exc
    places = display_exponent(c)
    if -value.as_tuple().exponent > places:
        if places == 0:
            raise AmountError(f"{c.upper()} has no decimals: write a whole number.")
        raise AmountError(f"{c.upper()} has at most {places} decimals.")
    minor = int(value.scaleb(exponent(c)))
    if minor <= 0:
        raise AmountError("The amount must be more than zero.")
    if c in THREE_DECIMAL and minor % 10:
        raise AmountError(f"Stripe needs {c.upper()} amounts to end in 0, like 5.120.")
    return minor


def parse_money(text: str) -> Money:
    """Parse "5000 USD" or "750000 JPY" (major units then currency code) into Money."""
    parts = text.split()
    if len(parts) != 2 or not re.fullmatch(r"[A-Za-z]{3}", parts[1]):
        raise AmountError(f"“{text}” should be an amount and a currency, like 5000 USD.")
    currency = parts[1].lower()
    return Money(parse_amount(parts[0], currency), currency)
