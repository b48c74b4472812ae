from __future__ import annotations

from datetime import UTC, datetime

from domain.export import COLUMNS, chain_head_row, iso


def test_one_header_with_unique_columns_starting_with_the_kind_of_row() -> None:
    assert len(set(COLUMNS)) == len(COLUMNS) and COLUMNS[:3] == ("record", "id", "at")


def test_the_last_row_is_the_chain_head() -> None:
    row = chain_head_row(42, 1001, datetime(2026, 12, 1, 0, 0, 5, tzinfo=UTC), "ab" * 32)
    assert list(row) == list(COLUMNS)
    assert (row["record"], row["id"], row["chain_seq"], row["hash"], row["at"]) == (
        "chain_head",
        "1001",
        "42",
        "ab" * 32,
        "2026-12-01 00:00:05+00",
    )
    assert chain_head_row(None, None, None, None)["hash"] == "" and iso(None) == ""
