"""Sealing the audit log into its hash chain, and verifying the chain for an auditor."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from psycopg_pool import ConnectionPool

from domain.audit_chain import Break, check
from store import audit_chain, db


def seal(pool: ConnectionPool, *, now: datetime, wait: bool = False, batch: int = 5000) -> int:
    """Seal every record queued so far; return how many. Without wait, a sealer already at work is left to it."""
    total = 0
    while True:
        with db.transaction(pool) as conn:
            sealed = audit_chain.seal_batch(conn, now=now, limit=batch, wait=wait)
        if not sealed:
            return total
        total += sealed


@dataclass(frozen=True, slots=True)
class Verdict:
    """What `audit verify` found."""

    checked: int
    first_seq: int
    head_seq: int | None
    head_hash: bytes | None
    queued: int
    problem: Break | None = None
    anchor_problem: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the chain matched everywhere it was checked."""
        return self.problem is None and self.anchor_problem is None


def verify(
    pool: ConnectionPool,
    *,
    since: datetime | None = None,
    anchor: bytes | None = None,
    progress: Callable[[int], None] | None = None,
) -> Verdict:
    """Walk the chain from the start (or from the first link sealed since `since`), stopping at the first break.

    With an anchor (a head hash kept outside the database), also check that the chain still holds it:
    a chain rewritten from some record on would hash to something else.
    """
    with db.connection(pool) as conn, conn.transaction():
        first = 1
        if since is not None:
            found = audit_chain.first_since(conn, since)
            if found is None:  # nothing sealed since then: there is nothing to walk
                last = audit_chain.head(conn)
                found = last.seq + 1 if last else 1
            first = found
        prev_seq, prev_hash = audit_chain.link_before(conn, first)
        checked = 0
        problem: Break | None = None
        for link in audit_chain.links(conn, first):
            problem = check(link, prev_seq, prev_hash)
            if problem is not None:
                break
            prev_seq, prev_hash = link.seq, link.hash
            checked += 1
            if progress and checked % 100_000 == 0:
                progress(checked)
        if problem is None or problem.reason == "link_broken":
            # A record neither sealed nor queued: written around the chain, or the one whose link was removed.
            around = audit_chain.written_around(conn, since)
            if around is not None:
                problem = Break(problem.seq, around, "link_removed") if problem else Break(0, around, "never_sealed")
        anchor_problem = None
        if anchor is not None and audit_chain.position_of(conn, anchor) is None:
            anchor_problem = (
                f"the anchor {anchor.hex()} is not in the chain: the chain was rewritten after it was taken "
                "(or it belongs to another database)"
            )
        last = audit_chain.head(conn)
        return Verdict(
            checked=checked,
            first_seq=first,
            head_seq=last.seq if last else None,
            head_hash=last.hash if last else None,
            queued=audit_chain.queued(conn),
            problem=problem,
            anchor_problem=anchor_problem,
        )
