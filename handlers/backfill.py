"""Backfill: Stripe's Events API through the same inbox as webhooks, skipping what is stored."""

from __future__ import annotations

import json
import logging
from datetime import datetime

import stripe
from psycopg_pool import ConnectionPool

from domain.redact import without_card_data
from handlers.webhook import BadEvent, parse
from services.stripe_gateway import translated
from store import db, events

log = logging.getLogger(__name__)


def backfill(pool: ConnectionPool, client: stripe.StripeClient, since: datetime, until: datetime) -> tuple[int, int]:
    """Store every event created in [since, until]; return (stored, already stored)."""
    stored = skipped = 0
    params = {"created": {"gte": int(since.timestamp()), "lte": int(until.timestamp())}, "limit": 100}
    with translated("list events"):
        page = client.v1.events.list(params=params)  # type: ignore[arg-type]
        for event in page.auto_paging_iter():
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
    return stored, skipped
