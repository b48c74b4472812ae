"""The monthly export's shape, pure: its columns (one header for every kind of row) and its last row."""

from __future__ import annotations

from datetime import UTC, datetime

FORMATS = ("csv", "jsonl")

# One header for the whole file; each kind of row (the `record` column) fills the columns it has.
COLUMNS = (
    "record",  # refund, dispute, audit, chain_head
    "id",
    "at",  # UTC, as Postgres prints it (2026-11-01 00:00:00+00): a refund's creation, a dispute's opening, …
    "account",
    "amount",  # minor units, as Stripe sends them
    "currency",
    "amount_major",  # the same in major units: 12.34, 500 (JPY), 5.120 (KWD)
    "status",  # the refund's final status; the dispute's outcome
    "reason",
    "requested_by",
    "requested_by_name",
    "approved_by",  # approvers, ';'-separated
    "approved_by_name",
    "via_bot",  # yes: made by an approved request; no: made in the Dashboard or elsewhere
    "owner",
    "owner_name",
    "evidence_due_by",
    "deadline_met",  # yes: evidence submitted; no: the deadline passed without it; pending
    "stripe_ids",
    "actor",
    "actor_name",
    "surface",
    "action",
    "subject",
    "details",  # JSON
    "chain_seq",  # on the chain_head row: the head's position in the audit chain
    "hash",  # on the chain_head row: the head's hash (hex), the anchor `audit verify --anchor` takes
)


def iso(when: datetime | None) -> str:
    """A time as the export writes it: UTC, as Postgres prints a timestamptz (2026-11-01 00:00:00.5+00)."""
    if when is None:
        return ""
    text = when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f").rstrip("0").rstrip(".")
    return f"{text}+00"


def chain_head_row(seq: int | None, record_id: int | None, sealed_at: datetime | None, head_hash: str | None) -> dict:
    """The last row: the audit chain's head when the export was made (a copy of it kept outside the database)."""
    row = dict.fromkeys(COLUMNS, "")
    row.update(
        record="chain_head",
        id="" if record_id is None else str(record_id),
        at=iso(sealed_at),
        chain_seq="" if seq is None else str(seq),
        hash=head_hash or "",
    )
    return row
