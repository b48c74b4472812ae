"""The audit log's hash chain, pure: how a link is computed and what makes one not match.

Each sealed record has a link: its position (seq), the hash of its content, the hash of the link
before it, and its own hash = sha256(prev_hash || content_hash). Changing a record's content, its
place, or removing it breaks the link where it happened; rewriting every link after a change is
caught by comparing the head with a copy kept outside the database (each monthly export prints it).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

GENESIS = bytes(32)  # the prev_hash of the first link

REASONS = {
    "record_missing": "is missing from the audit log (deleted)",
    "content_changed": "does not match what was sealed: its content, or its place in the chain, was changed",
    "seal_changed": "has a seal that does not hash to itself: the chain itself was edited",
    "link_broken": "does not follow the link before it: a sealed record was removed, inserted or moved",
    "never_sealed": "was never sealed nor queued for sealing: it was written around the chain",
    "link_removed": "lost its place in the chain: its seal was removed (the links after it no longer follow)",
}


def chain_hash(prev_hash: bytes, content_hash: bytes) -> bytes:
    """The hash of a link."""
    return hashlib.sha256(prev_hash + content_hash).digest()


@dataclass(frozen=True, slots=True)
class Link:
    """A link as stored, with the hash of its record's content as it is now (None: no such record)."""

    seq: int
    record_id: int
    content_hash: bytes
    prev_hash: bytes
    hash: bytes
    current_content: bytes | None


@dataclass(frozen=True, slots=True)
class Break:
    """The first place where the chain does not match."""

    seq: int
    record_id: int
    reason: str

    @property
    def text(self) -> str:
        """What to tell an auditor."""
        where = f" (chain position {self.seq})" if self.seq else ""
        return f"audit record {self.record_id}{where} {REASONS[self.reason]}"


def check(link: Link, prev_seq: int, prev_hash: bytes) -> Break | None:
    """Whether a link follows (prev_seq, prev_hash) and still matches its record."""
    if link.seq != prev_seq + 1 or link.prev_hash != prev_hash:
        return Break(link.seq, link.record_id, "link_broken")
    if chain_hash(link.prev_hash, link.content_hash) != link.hash:
        return Break(link.seq, link.record_id, "seal_changed")
    if link.current_content is None:
        return Break(link.seq, link.record_id, "record_missing")
    if link.current_content != link.content_hash:
        return Break(link.seq, link.record_id, "content_changed")
    return None
