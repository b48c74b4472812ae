from __future__ import annotations

import pytest

from domain.money import AmountError, Money, exponent, format_amount, parse_amount, parse_money


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        (1234, "usd", "$12.34"),
        (0, "usd", "$0.00"),
        (-100, "usd", "-$1.00"),
        (500, "jpy", "¥500"),
        (1500000, "jpy", "¥1,500,000"),
        (50000, "krw", "₩50,000"),
        (5120, "kwd", "5.120 KWD"),
        (1, "bhd", "0.001 BHD"),
        (123456789, "eur", "€1,234,567.89"),
        (1000, "sek", "10.00 SEK"),
        (30000000, "inr", "₹300,000.00"),
        (50000, "isk", "500 ISK"),
        (999, "XOF", "999 XOF"),
    ],
)
def test_format_amount(amount: int, currency: str, shown: str) -> None:
    assert format_amount(amount, currency) == shown


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("12.34", "usd", 1234),
        ("12", "usd", 1200),
        ("$1,000.5", "usd", 100050),
        ("0.01", "usd", 1),
        (".5", "eur", 50),
        ("500", "jpy", 500),
        ("¥500", "jpy", 500),
        ("5.12", "kwd", 5120),
        ("5.120", "kwd", 5120),
        ("5.120 KWD", "kwd", 5120),
        ("500", "isk", 50000),
    ],
)
def test_parse_amount(text: str, currency: str, minor: int) -> None:
    assert parse_amount(text, currency) == minor


@pytest.mark.parametrize(
    ("text", "currency", "says"),
    [
        ("1.5", "jpy", "no decimals"),
        ("1.234", "usd", "at most 2 decimals"),
        ("1.2345", "kwd", "at most 3 decimals"),
        ("5.125", "kwd", "end in 0"),
        ("0", "usd", "more than zero"),
        ("0.00", "usd", "more than zero"),
        ("-5", "usd", "not an amount"),
        ("abc", "usd", "not an amount"),
        ("1e5", "usd", "not an amount"),
        ("", "usd", "not an amount"),
        ("12.5 half", "usd", "not an amount"),
        ("5.5", "isk", "no decimals"),
    ],
)
def test_parse_amount_refuses(text: str, currency: str, says: str) -> None:
    with pytest.raises(AmountError, match=says):
        parse_amount(text, currency)


def test_round_trip_every_exponent() -> None:
    for currency in ("usd", "jpy", "kwd"):
        minor = 10 ** exponent(currency) * 7 + (10 if exponent(currency) == 3 else 0)
        shown = format_amount(minor, currency)
        assert parse_amount(shown, currency) == minor


def test_parse_money() -> None:
    assert parse_money("5000 USD") == Money(500000, "usd")
    assert parse_money("750000 JPY") == Money(750000, "jpy")
    assert str(parse_money("4.5 KWD")) == "4.500 KWD"
    with pytest.raises(AmountError):
        parse_money("5000")
    with pytest.raises(AmountError):
        parse_money("USD 5000")
