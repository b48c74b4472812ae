from __future__ import annotations

import hashlib

import pytest

from domain.audit_chain import GENESIS, Link, chain_hash, check

A = hashlib.sha256(b"record 1").digest()
B = hashlib.sha256(b"record 2").digest()
H1 = chain_hash(GENESIS, A)
H2 = chain_hash(H1, B)


def test_a_link_hashes_the_one_before_and_its_content() -> None:
    assert hashlib.sha256(bytes(32) + A).digest() == H1
    assert chain_hash(H1, B) != chain_hash(GENESIS, B)  # the same record elsewhere hashes differently


@pytest.mark.parametrize(
    ("link", "prev_seq", "prev_hash", "reason"),
    [
        (Link(1, 10, A, GENESIS, H1, A), 0, GENESIS, None),
        (Link(2, 11, B, H1, H2, B), 1, H1, None),
        (Link(3, 11, B, H1, H2, B), 1, H1, "link_broken"),  # a position skipped: a link removed
        (Link(2, 11, B, GENESIS, chain_hash(GENESIS, B), B), 1, H1, "link_broken"),  # moved or re-chained
        (Link(2, 11, B, H1, H1, B), 1, H1, "seal_changed"),  # the stored hash edited
        (Link(2, 11, B, H1, H2, None), 1, H1, "record_missing"),  # the record deleted
        (Link(2, 11, B, H1, H2, A), 1, H1, "content_changed"),  # the record edited (or another one put there)
    ],
)
def test_check(link, prev_seq, prev_hash, reason) -> None:
    found = check(link, prev_seq, prev_hash)
    assert (found.reason if found else None) == reason
    if found:
        assert found.record_id == link.record_id and str(link.record_id) in found.text
