"""FINANCE_CHANNEL and RECONCILIATION_TOLERANCE: defaults, per-currency tolerances, errors that name them."""

from __future__ import annotations

import pytest

from settings import ConfigError, load_settings


def test_defaults_5_usd_and_the_alerts_channel() -> None:
    s = load_settings({"ALERTS_CHANNEL": "C0ALERTS"})
    assert s.reconciliation_tolerance == {"usd": 500}
    assert s.finance_channel is None and s.finance_target == "C0ALERTS"
    assert load_settings({"FINANCE_CHANNEL": "C0FIN", "ALERTS_CHANNEL": "C0ALERTS"}).finance_target == "C0FIN"


def test_tolerances_per_currency_to_the_unit() -> None:
    s = load_settings({"RECONCILIATION_TOLERANCE": "5.00 USD, 500 JPY, 1.500 KWD, 4.50 EUR"})
    assert s.reconciliation_tolerance == {"usd": 500, "jpy": 500, "kwd": 1500, "eur": 450}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RECONCILIATION_TOLERANCE", "5 dollars"),
        ("RECONCILIATION_TOLERANCE", "5.001 USD"),
        ("RECONCILIATION_TOLERANCE", "0.5 JPY"),
        ("FINANCE_CHANNEL", "#finance"),
    ],
)
def test_a_bad_value_names_its_variable(name, value) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings({name: value})
    assert name in str(err.value)
