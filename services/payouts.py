"""Payouts as Stripe reports them: kept current, audited, queued for reconciliation once paid, and
alerted to on-call when they fail (in the alerts channel ALERT_ROUTES picks for the account)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from domain.alerts import channel_for
from domain.finance import payout_from_stripe
from messages import finance as fm
from messages import keys
from services.metrics import ALERTS
from settings import Settings
from store import audit, outbox
from store import finance as store


def payout_changed(
    conn: psycopg.Connection,
    settings: Settings,
    obj: dict[str, Any],
    *,
    account: str | None,
    observed_at: datetime,
    event_id: str,
    event_type: str,
    now: datetime,
) -> None:
    """A payout snapshot from an event: merge it, audit the change, reconcile it once paid, alert a failure."""
    saved = store.save_payout(conn, payout_from_stripe(obj, account=account, observed_at=observed_at))
    current = saved.after or saved.before
    if current is None:
        return
    if saved.after is not None:
        audit.record(
            conn,
            actor="stripe",
            surface="webhook",
            action="payout.synced",
            subject=current.id,
            stripe_ids=[current.id, event_id],
            details={
                "event": event_type,
                "status": current.status,
                "status_before": saved.before.status if saved.before else None,
                "amount": current.amount,
                "currency": current.currency,
                "failure_code": current.failure_code,
            },
            cause=f"{event_id}:{current.id}",
            at=now,
        )
        if current.status == "paid" and current.automatic and store.current_payout_run(conn, current.id) is None:
            # Summing its balance transactions is a Stripe call: the worker does it, not this transaction.
            store.payout_due(conn, current.id, now)
    if current.status == "failed":
        defaults = {"alerts": settings.alerts_channel, "disputes": settings.disputes_channel}
        channel = channel_for("alerts", current.account, settings.alert_routes, defaults)
        key = keys.payout_failed(current.id)
        if channel and not outbox.exists(conn, key):
            outbox.enqueue(
                conn,
                channel=channel,
                payload=fm.payout_failed_alert(current, livemode=current.livemode),
                message_key=key,
            )
            ALERTS.labels("payout_failed").inc()
