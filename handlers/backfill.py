"""Backfill: Stripe's Events API through the same inbox as webhooks, skipping what is stored.

Also the delivery check: every few minutes the worker asks Stripe for the events it failed to
deliver (`delivery_success=false`) on the platform and on each connected account (Stripe-Account),
stores those we lack exactly as a webhook would (so each is applied once), and tells on-call how
many Stripe could not deliver, or that the endpoint has gone silent.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import stripe
from psycopg_pool import ConnectionPool

from domain.errors import DeskError, NotFound
from domain.redact import without_card_data
from handlers.webhook import BadEvent, parse
from services import connect, oncall
from services.stripe_gateway import translated
from settings import Settings
from store import alerts, db, events

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Fetched:
    """What one listing brought: stored anew, already stored, and how many Stripe listed."""

    stored: int = 0
    skipped: int = 0
    listed: int = 0


def fetch(
    pool: ConnectionPool,
    client: stripe.StripeClient,
    since: datetime,
    until: datetime,
    *,
    account: str | None = None,
    undelivered_only: bool = False,
) -> Fetched:
    """Store every event Stripe lists in [since, until] (of one connected account, or the platform's)."""
    stored = skipped = listed = 0
    params: dict[str, Any] = {"created": {"gte": int(since.timestamp()), "lte": int(until.timestamp())}, "limit": 100}
    if undelivered_only:
        params["delivery_success"] = False
    options: dict[str, Any] = {"stripe_account": account} if account else {}
    with translated("list events", "events"):
        page = client.v1.events.list(params=params, options=options)  # type: ignore[arg-type]
        for event in page.auto_paging_iter():
            listed += 1
            try:
                # The same checks as a webhook: what could never be stored is skipped, not retried forever.
                data, text = parse(json.dumps(event.to_dict()).encode())
            except BadEvent as exc:
                log.warning("backfill skipped event %s: %s", getattr(event, "id", "?"), exc)
                continue
            with db.connection(pool) as conn:
                if events.record(conn, data, without_card_data(data, text), source="backfill"):
                    stored += 1
                else:
                    skipped += 1
    return Fetched(stored, skipped, listed)


def backfill(
    pool: ConnectionPool,
    client: stripe.StripeClient,
    since: datetime,
    until: datetime,
    *,
    accounts: tuple[str, ...] = (),
) -> tuple[int, int]:
    """Store every event created in [since, until] on the platform and the given connected accounts.

    Returns (stored, already stored). A connected account we can no longer reach is skipped.
    """
    stored = skipped = 0
    for account in (None, *accounts):
        try:
            got = fetch(pool, client, since, until, account=account)
        except NotFound as exc:
            log.warning("backfill skipped %s: %s", account, exc.message)
            continue
        stored, skipped = stored + got.stored, skipped + got.skipped
    return stored, skipped


def _newer_than(client: stripe.StripeClient, after: datetime, account: str | None) -> bool:
    """Whether Stripe has events created after `after` (one page of one)."""
    options: dict[str, Any] = {"stripe_account": account} if account else {}
    params = {"created": {"gt": int(after.timestamp())}, "limit": 1}
    with translated("list events", "events"):
        return bool(client.v1.events.list(params=params, options=options).data)  # type: ignore[arg-type]


def check_deliveries(
    pool: ConnectionPool, client: stripe.StripeClient, settings: Settings, now: datetime
) -> list[str] | None:
    """One delivery check over the platform and every known connected account; None when it could not run.

    Returns what on-call was told ('webhook_delivery:open', 'webhook_silence:recover', …).
    """
    window = settings.failure_rate_window
    scopes = (None, *connect.known_accounts(pool, 1000))
    undelivered = fetched = 0
    try:
        for account in scopes:
            try:
                got = fetch(pool, client, now - window, now, account=account, undelivered_only=True)
            except NotFound as exc:
                log.info("delivery check skipped %s: %s", account, exc.message)
                continue
            undelivered, fetched = undelivered + got.listed, fetched + got.stored
        with db.connection(pool) as conn:
            last = alerts.last_webhook(conn)
        newer = False
        if last is not None and now - last >= settings.webhook_silence:
            for account in scopes:
                try:
                    newer = _newer_than(client, last, account)
                except NotFound:
                    continue
                if newer:
                    break
    except DeskError as exc:
        # A key without Events: Read, Stripe down: the check says so and runs again next time.
        log.warning("delivery check could not run: %s", exc.message)
        return None
    return oncall.check_delivery(
        pool, settings, undelivered=undelivered, fetched=fetched, last_webhook=last, stripe_has_newer=newer, now=now
    )
