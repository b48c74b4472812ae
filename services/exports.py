"""The monthly report for compliance: every refund and dispute of a month and every audit record,
ending with the audit chain's head; written to a file, DMed to an approver who asks, or posted to
FINANCE_CHANNEL by the worker on the first of the month.

Files go to Slack the current way (files.getUploadURLExternal, the upload, files.completeUploadExternal),
streamed from disk: a month of a million rows is never read into memory.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from psycopg_pool import ConnectionPool
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from domain.errors import DeskError
from domain.export import COLUMNS, chain_head_row
from domain.finance import month_bounds, month_label, previous_month
from messages import finance as fm
from services import audit_trail
from services.roles import RoleDirectory
from store import audit, audit_chain, db
from store import export as store
from store import finance as finance_store

log = logging.getLogger(__name__)

UPLOAD_TIMEOUT = 120
JOB_LEASE = timedelta(hours=2)
RETRY_FAILED = timedelta(minutes=30)


class ExportRefused(DeskError):
    """Only approvers and admins may export the month's refunds and audit records."""


class UploadFailed(DeskError):
    """Slack did not take the file; try again in a minute."""


@dataclass(frozen=True, slots=True)
class Written:
    """An export written: its rows (without the header and head), and the chain head it ends with."""

    rows: int
    head_seq: int | None
    head_hash: str | None

    @property
    def head(self) -> tuple[int, str] | None:
        """(position, hash) of the chain head, if anything was sealed."""
        return (self.head_seq, self.head_hash) if self.head_seq is not None and self.head_hash else None


Names = Callable[[Iterable[str]], dict[str, str]]


def write(
    pool: ConnectionPool, year: int, month: int, out: BinaryIO, *, fmt: str, now: datetime, names: Names | None = None
) -> Written:
    """Write the month's export to `out`: refunds, disputes, audit records, then the chain head."""
    # Seal what is committed, so the head printed below covers every record written so far.
    audit_trail.seal(pool, now=now, wait=True)
    start, end = month_bounds(year, month)
    with db.connection(pool) as conn, conn.transaction():
        store.snapshot(conn)
        named = names(store.people(conn, start, end)) if names else {}
        rows = store.copy_out(conn, start, end, names=named, now=now, fmt=fmt, write=out.write)
        head = audit_chain.head(conn)
    last = chain_head_row(
        head.seq if head else None,
        head.record_id if head else None,
        head.sealed_at if head else None,
        head.hash.hex() if head else None,
    )
    if fmt == "csv":
        text = io.StringIO()
        csv.writer(text).writerow([last[c] for c in COLUMNS])
        out.write(text.getvalue().encode())
    else:
        out.write((json.dumps(last) + "\n").encode())
    return Written(rows, head.seq if head else None, head.hash.hex() if head else None)


def slack_names(client: WebClient, *, limit: int = 200) -> Names:
    """Names of Slack users by id (users.info, once each); an id Slack cannot name stays without one."""

    def lookup(ids: Iterable[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for user in list(ids)[:limit]:
            try:
                info = client.users_info(user=user).get("user") or {}
            except (SlackApiError, OSError) as exc:
                log.info("no name for %s: %s", user, type(exc).__name__)
                continue
            profile = info.get("profile") or {}
            name = profile.get("real_name") or info.get("real_name") or info.get("name")
            if name:
                found[user] = str(name)
        return found

    return lookup


def upload(
    client: WebClient,
    path: Path,
    *,
    filename: str,
    title: str,
    comment: str,
    channel: str | None = None,
    users: list[str] | None = None,
) -> str:
    """Upload a file to Slack and share it in a channel or with users (a DM); return its file id."""
    size = path.stat().st_size
    try:
        got = client.files_getUploadURLExternal(filename=filename, length=size)
        with path.open("rb") as body:
            request = urllib.request.Request(  # noqa: S310 - the URL is the one Slack just gave us
                got["upload_url"],
                data=body,
                method="POST",
                headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"},
            )
            with urllib.request.urlopen(request, timeout=UPLOAD_TIMEOUT) as answer:  # noqa: S310
                if answer.status != 200:
                    raise UploadFailed(f"Slack answered {answer.status} to the upload.")
        client.files_completeUploadExternal(
            files=[{"id": got["file_id"], "title": title}],
            channel_id=channel,
            channels=users,
            initial_comment=comment,
        )
    except SlackApiError as exc:
        log.warning("Slack refused the file %s: %s", filename, exc.response.get("error"))
        raise UploadFailed(f"Slack refused the file ({exc.response.get('error')}).") from exc
    except (urllib.error.URLError, OSError) as exc:
        log.warning("uploading %s failed: %s", filename, type(exc).__name__)
        raise UploadFailed() from exc
    return str(got["file_id"])


def _to_slack(
    pool: ConnectionPool,
    client: WebClient,
    year: int,
    month: int,
    *,
    now: datetime,
    channel: str | None,
    users: list[str] | None,
    asker: str | None,
) -> Written:
    label = month_label(year, month)
    filename = f"refund-desk-{label}.csv"
    with tempfile.TemporaryDirectory(prefix="refund-desk-export-") as folder:
        path = Path(folder) / filename
        with path.open("wb") as out:
            written = write(pool, year, month, out, fmt="csv", now=now, names=slack_names(client))
        upload(
            client,
            path,
            filename=filename,
            title=f"Refund desk {label}: refunds, disputes, audit records",
            comment=fm.export_comment(label, written.rows, written.head, asker=asker),
            channel=channel,
            users=users,
        )
    return written


def send_by_dm(
    pool: ConnectionPool, client: WebClient, roles: RoleDirectory, user: str, year: int, month: int, *, now: datetime
) -> Written:
    """`/refunds export YYYY-MM`: an approver or admin gets the month's file by DM. Raises ExportRefused."""
    if not roles.for_decision(user).approver:
        raise ExportRefused()
    written = _to_slack(pool, client, year, month, now=now, channel=None, users=[user], asker=user)
    with db.connection(pool) as conn:
        audit.record(
            conn,
            actor=user,
            surface="slack",
            action="export.sent",
            subject=f"export:{month_label(year, month)}",
            details={"rows": written.rows, "chain_seq": written.head_seq, "chain_head": written.head_hash},
            at=now,
        )
    return written


def monthly_due(pool: ConnectionPool, client: WebClient, channel: str | None, now: datetime) -> Written | None:
    """On the first of the month, last month's report to FINANCE_CHANNEL, once however many workers run."""
    if now.day > 3 or not channel:  # the 1st; a worker that was down then catches up until the 3rd
        return None
    year, month = previous_month(now)
    key = month_label(year, month)
    with db.connection(pool) as conn:
        if not finance_store.claim_job(conn, "monthly_export", key, now, JOB_LEASE):
            return None
    try:
        written = _to_slack(pool, client, year, month, now=now, channel=channel, users=None, asker=None)
    except DeskError as exc:
        with db.connection(pool) as conn:
            finance_store.finish_job(conn, "monthly_export", key, now, error=exc.message, retry_at=now + RETRY_FAILED)
        raise
    with db.transaction(pool) as conn:
        finance_store.finish_job(conn, "monthly_export", key, now)
        audit.record(
            conn,
            actor="system",
            surface="worker",
            action="export.posted",
            subject=f"export:{key}",
            details={"rows": written.rows, "chain_seq": written.head_seq, "chain_head": written.head_hash},
            at=now,
        )
    return written


def default_filename(year: int, month: int, fmt: str) -> str:
    """refund-desk-2026-11.csv."""
    return f"refund-desk-{month_label(year, month)}.{fmt}"
