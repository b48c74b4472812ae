from __future__ import annotations

from datetime import date

import pytest

from domain.commands import USAGE, Export, Help, Recon, parse


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("recon", Recon()),
        ("RECON 2026-11-30", Recon(date(2026, 11, 30))),
        ("recon `2026-11-30`", Recon(date(2026, 11, 30))),
        ("export 2026-11", Export(2026, 11)),
        ("export 2027-01", Export(2027, 1)),
    ],
)
def test_finance_commands(text, command) -> None:
    assert parse(text) == command


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("recon 2026-02-30", "not a day"),
        ("recon yesterday", "YYYY-MM-DD"),
        ("recon 2026-11-30 acct_1", "Which day"),
        ("export", "Which month"),
        ("export 2026-13", "YYYY-MM"),
        ("export 2026-11 2026-12", "Which month"),
    ],
)
def test_finance_commands_explain_bad_input(text, says) -> None:
    result = parse(text)
    assert isinstance(result, Help) and says in result.problem


def test_usage_names_them() -> None:
    assert "/refunds recon" in USAGE and "/refunds export" in USAGE
