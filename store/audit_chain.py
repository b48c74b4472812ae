"""The audit log's hash chain in Postgres: sealing queued records, the head, and the links to verify.

Records are queued for sealing by a trigger in their writer's transaction (audit_unsealed), so the
sealer sees a record exactly when it commits. One sealer at a time (a transaction-level advisory
lock) takes the queue oldest id first and appends links; writers never wait for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import class_row

from domain.audit_chain import GENESIS, Link, chain_hash

# Any constant: the same for every process that seals.
SEAL_LOCK = 0x5EFD_0006

TRY_LOCK = "SELECT pg_try_advisory_xact_lock(%(lock)s)"
LOCK = "SELECT pg_advisory_xact_lock(%(lock)s)"

HEAD = """
SELECT seq, record_id, hash, sealed_at FROM audit_chain ORDER BY seq DESC LIMIT 1
"""

# Taken from the queue and read in one statement; a queued id whose record is gone (removed before
# it was sealed) comes back with no content and is left out of the chain.
TAKE = """
WITH taken AS (
    DELETE FROM audit_unsealed
    WHERE record_id IN (SELECT record_id FROM audit_unsealed ORDER BY record_id LIMIT %(limit)s)
    RETURNING record_id
)
SELECT t.record_id, CASE WHEN a.id IS NOT NULL THEN audit_content_hash(a) END AS content
FROM taken t LEFT JOIN audit_log a ON a.id = t.record_id
ORDER BY t.record_id
"""

COPY_LINKS = "COPY audit_chain (seq, record_id, content_hash, prev_hash, hash, sealed_at) FROM STDIN"

LINKS = """
SELECT c.seq, c.record_id, c.content_hash, c.prev_hash, c.hash,
       CASE WHEN a.id IS NOT NULL THEN audit_content_hash(a) END AS current_content
FROM audit_chain c LEFT JOIN audit_log a ON a.id = c.record_id
WHERE c.seq >= %(first)s
ORDER BY c.seq
"""

LINK_BEFORE = "SELECT seq, hash FROM audit_chain WHERE seq < %(seq)s ORDER BY seq DESC LIMIT 1"
FIRST_SINCE = "SELECT min(seq) FROM audit_chain WHERE sealed_at >= %(since)s"
WITH_HASH = "SELECT seq FROM audit_chain WHERE hash = %(hash)s"
QUEUED = "SELECT count(*) FROM audit_unsealed"

# Records that are neither sealed nor waiting to be: written with the queueing trigger disabled.
AROUND_THE_CHAIN = """
SELECT a.id FROM audit_log a
WHERE NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.record_id = a.id)
  AND NOT EXISTS (SELECT 1 FROM audit_unsealed u WHERE u.record_id = a.id)
  AND (%(since)s::timestamptz IS NULL OR a.at >= %(since)s)
ORDER BY a.id
LIMIT 1
"""


@dataclass(frozen=True, slots=True)
class Head:
    """The last link: an auditor keeps a copy of its hash outside the database."""

    seq: int
    record_id: int
    hash: bytes
    sealed_at: datetime


def head(conn: psycopg.Connection) -> Head | None:
    """The chain's head, or None before anything was sealed."""
    with conn.cursor(row_factory=class_row(Head)) as cur:
        return cur.execute(HEAD).fetchone()


def seal_batch(conn: psycopg.Connection, *, now: datetime, limit: int = 5000, wait: bool = False) -> int | None:
    """Seal up to `limit` queued records, in a transaction the caller owns; None when another sealer is at work.

    With wait, queue behind the other sealer instead of returning None.
    """
    if wait:
        conn.execute(LOCK, {"lock": SEAL_LOCK})
    elif not conn.execute(TRY_LOCK, {"lock": SEAL_LOCK}).fetchone()[0]:
        return None
    last = head(conn)
    seq, prev = (last.seq, last.hash) if last else (0, GENESIS)
    taken = conn.execute(TAKE, {"limit": limit}).fetchall()
    sealed = 0
    with conn.cursor() as cur, cur.copy(COPY_LINKS) as copy:
        for record_id, content in taken:
            if content is None:
                continue
            seq += 1
            link = chain_hash(prev, content)
            copy.write_row((seq, record_id, content, prev, link, now))
            prev = link
            sealed += 1
    return sealed


def links(conn: psycopg.Connection, first: int, *, batch: int = 2000) -> Iterator[Link]:
    """Every link from position `first` on, with its record's content hash now, streamed (a
    server-side cursor: the caller holds a transaction open while iterating)."""
    with conn.cursor(name="audit_chain_links", row_factory=class_row(Link)) as cur:
        cur.itersize = batch
        cur.execute(LINKS, {"first": first})
        yield from cur


def link_before(conn: psycopg.Connection, seq: int) -> tuple[int, bytes]:
    """(seq, hash) of the link before position `seq`; (0, GENESIS) for the first."""
    row = conn.execute(LINK_BEFORE, {"seq": seq}).fetchone()
    return (row[0], bytes(row[1])) if row else (0, GENESIS)


def first_since(conn: psycopg.Connection, since: datetime) -> int | None:
    """The first position sealed at or after `since`."""
    return conn.execute(FIRST_SINCE, {"since": since}).fetchone()[0]


def position_of(conn: psycopg.Connection, link_hash: bytes) -> int | None:
    """Where a hash (an anchor kept outside the database) sits in the chain, if anywhere."""
    row = conn.execute(WITH_HASH, {"hash": link_hash}).fetchone()
    return row[0] if row else None


def queued(conn: psycopg.Connection) -> int:
    """How many records wait to be sealed."""
    return conn.execute(QUEUED).fetchone()[0]


def written_around(conn: psycopg.Connection, since: datetime | None) -> int | None:
    """The first record neither sealed nor queued, if any."""
    row = conn.execute(AROUND_THE_CHAIN, {"since": since}).fetchone()
    return row[0] if row else None
