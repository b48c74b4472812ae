"""Money as Stripe sends it: integer minor units plus a lowercase ISO currency code."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

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
    "usd": "$",
    "eur": "€",
    "gbp": "£",
    "jpy": "¥",
    "krw": "₩",
    "inr": "₹",
    "cny": "CN¥",
    "aud": "A$",
    "cad": "CA$",
    "nzd": "NZ$",
    "hkd": "HK$",
    "sgd": "S$",
    "chf": "CHF ",
    "brl": "R$",
    "mxn": "MX$",
    "ils": "₪",
    "vnd": "₫",
    "php": "₱",
    "thb": "฿",
}

_NUMBER_RE = re.compile(r"^[0-9.,]*[0-9][0-9.,]*$")
_INT_RE = re.compile(r"^[0-9]*$")
_MAX_DIGITS = 15  # far above any amount Stripe takes; keeps a pasted number from becoming huge


class AmountError(ValueError):
    """The amount is not a valid amount for this currency."""


def _quoted(text: str) -> str:
    shown = text.strip()
    return f"“{shown[:40]}{'…' if len(shown) > 40 else ''}”"


def _strip_currency(text: str, currency: str) -> str:
    """Remove the payment's own symbol or code around the number ("$12.50", "5.120 KWD", "EUR 12,50")."""
    cleaned = text.strip()
    code = currency.upper()
    symbol = SYMBOLS.get(currency, "").strip()
    for mark in (symbol, code):
        if not mark:
            continue
        if cleaned.upper().startswith(mark.upper()):
            cleaned = cleaned[len(mark) :].strip()
        if cleaned.upper().endswith(mark.upper()):
            cleaned = cleaned[: len(cleaned) - len(mark)].strip()
    return cleaned


def _reading(number: str, *, decimal: str, group: str, places: int) -> Decimal | None:
    """The number read with `decimal` as the decimal mark and `group` as the thousands separator, if valid."""
    if number.count(decimal) > 1:
        return None
    whole, _, frac = number.partition(decimal)
    has_frac = decimal in number
    if has_frac and (places == 0 or not frac or len(frac) > places or not _INT_RE.match(frac)):
        return None
    if group in whole:
        groups = whole.split(group)
        if not (1 <= len(groups[0]) <= 3) or any(len(g) != 3 for g in groups[1:]):
            return None
        # A lone "1.234" is a decimal point to most readers: a dot groups only "1.234.567" or "1.234,56".
        if group == "." and len(groups) == 2 and not has_frac:
            return None
        whole = "".join(groups)
    if not _INT_RE.match(whole) or (not whole and not frac):
        return None
    return Decimal(f"{whole or '0'}.{frac or '0'}")


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
    """Parse major units typed by a person ("12.50", "12,50", "1,000", "¥500") into minor units.

    An amount has exactly one reading in the currency or is refused: a decimal comma or a thousands
    separator is accepted only where it cannot be read another way for this currency. Raises
    AmountError with a message fit to show the person.
    """
    c = currency.lower()
    code = c.upper()
    number = _strip_currency(text, c)
    if not _NUMBER_RE.match(number):
        raise AmountError(f"{_quoted(text)} is not an amount. Write just the number in {code}, like 12.50.")
    places = display_exponent(c)
    readings = {
        r for d, g in ((".", ","), (",", ".")) if (r := _reading(number, decimal=d, group=g, places=places)) is not None
    }
    if len(readings) > 1:
        shown = " or ".join(format_amount(int(r.scaleb(exponent(c))), c) for r in sorted(readings))
        raise AmountError(
            f"{_quoted(text)} could mean {shown}. Write it without a thousands separator and with a point for decimals."
        )
    if not readings:
        decimals = re.search(r"[.,]([0-9]+)$", number)
        if decimals and len(decimals.group(1)) > places:
            if places == 0:
                raise AmountError(f"{code} has no decimals: write a whole number, like 500.")
            raise AmountError(f"{code} has at most {places} decimals: {_quoted(text)} has {len(decimals.group(1))}.")
        raise AmountError(f"{_quoted(text)} is not an amount. Write just the number in {code}, like 12.50.")
    value = readings.pop()
    if len(str(int(value))) > _MAX_DIGITS:
        raise AmountError(f"{_quoted(text)} is far larger than any payment.")
    minor = int(value.scaleb(exponent(c)))
    if minor <= 0:
        raise AmountError("The amount must be more than zero.")
    if c in THREE_DECIMAL and minor % 10:
        raise AmountError(f"Stripe needs {code} amounts to end in 0, like 5.120.")
    return minor


# ISO 4217 codes of currencies Stripe settles or presents; a word in this set after an amount is its currency.
CURRENCY_CODES = frozenset(
    re.findall(
        r"[a-z]{3}",
        """
    aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bhd bif bmd bnd bob brl bsd bwp byn bzd cad cdf chf
    clp cny cop crc cve czk djf dkk dop dzd egp etb eur fjd fkp gbp gel gip gmd gnf gtq gyd hkd hnl htg huf idr
    ils inr isk jmd jod jpy kes kgs khr kmf krw kwd kyd kzt lak lbp lkr lrd lsl mad mdl mga mkd mmk mnt mop mur
    mvr mwk mxn myr mzn nad ngn nio nok npr nzd omr pab pen pgk php pkr pln pyg qar ron rsd rub rwf sar sbd scr
    sek sgd shp sle sos srd std szl thb tjs tnd top try ttd twd tzs uah ugx usd uyu uzs vnd vuv wst xaf xcd xof
    xpf yer zar zmw""",
    )
)
_ANY_SYMBOL = "".join(sorted({ch for s in SYMBOLS.values() for ch in s.strip() if not ch.isalpha()}))


def is_currency_code(word: str) -> bool:
    """Whether a word names a currency: upper case ("USD"), or a lower-case code that is no English word."""
    return word.lower() in CURRENCY_CODES and (
        word.isupper() or word in SYMBOLS or word in THREE_DECIMAL or word in ZERO_DECIMAL
    )


def could_be_amount(text: str) -> bool:
    """Whether text has an amount's shape in some currency ("25.50", "$1,000", "€12,50", "500JPY")."""
    core = re.sub(r"^[A-Za-z]{3}|[A-Za-z]{3}$", "", text.strip()).strip()
    core = re.sub(r"^(?:[A-Z]{1,2})?[" + re.escape(_ANY_SYMBOL) + "]", "", core).strip()
    if not _NUMBER_RE.match(core):
        return False
    return any(
        _reading(core, decimal=d, group=g, places=places) is not None
        for places in (0, 2, 3)
        for d, g in ((".", ","), (",", "."))
    )


def parse_money(text: str) -> Money:
    """Parse "5000 USD" or "750000 JPY" (major units then currency code) into Money."""
    parts = text.split()
    if len(parts) != 2 or not re.fullmatch(r"[A-Za-z]{3}", parts[1]):
        raise AmountError(f"“{text}” should be an amount and a currency, like 5000 USD.")
    currency = parts[1].lower()
    return Money(parse_amount(parts[0], currency), currency)
