"""PagerDuty: incidents page through the Events API v2, from a durable queue like Slack's.

Each incident has its own dedup_key, so an update is appended to the open alert instead of paging
again; the escalation pages once more as critical under a key of its own (PagerDuty does not notify
again about an alert someone acknowledged); acknowledging in Slack acknowledges, recovering resolves.
Events are queued in the transaction of the incident change and sent by the worker: PagerDuty being
slow or down never blocks the Slack alert, and an event is retried until PagerDuty takes it.

The `pagerduty` package's Events client was not used: its base URL must be https (a local stand-in
cannot be reached), it retries 429 without limit with sleeps inside the call (our queue retries
instead), and it brings an httpx fork; a POST with `requests` is all the API needs.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta
from typing import Any

import psycopg
import requests
from psycopg_pool import ConnectionPool

from domain.escalation import pagerduty_outcome
from domain.retry import backoff
from settings import Settings
from store import db, paging

log = logging.getLogger(__name__)

RETRY_BASE_SECONDS = 2.0
RETRY_CAP_SECONDS = 600.0
THROTTLED_SECONDS = 30.0  # PagerDuty: "retry after some time"; its limits adjust per service
SOURCE = "refund-desk"
MAX_SUMMARY = 1024


class PagerDutyClient:
    """POSTs events to the Events API v2 enqueue URL with our routing key."""

    def __init__(self, routing_key: str, events_url: str, *, timeout: float = 10.0) -> None:
        self.routing_key = routing_key
        self.events_url = events_url
        self.timeout = timeout
        self.http = requests.Session()

    def send(self, event: dict[str, Any]) -> tuple[int | None, str]:
        """(HTTP status or None when unreachable, PagerDuty's message or the error)."""
        try:
            response = self.http.post(
                self.events_url, json={**event, "routing_key": self.routing_key}, timeout=self.timeout
            )
        except requests.RequestException as exc:
            return None, type(exc).__name__
        try:
            body = response.json()
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        detail = "; ".join(str(e) for e in body.get("errors") or []) or str(body.get("message") or "")
        return response.status_code, f"HTTP {response.status_code} {body.get('status') or ''} {detail}".strip()


def build_client(settings: Settings) -> PagerDutyClient | None:
    """The process's PagerDuty client, or None when paging is not configured."""
    if not settings.pagerduty_routing_key:
        return None
    return PagerDutyClient(settings.pagerduty_routing_key, settings.pagerduty_events_url)


def trigger(
    conn: psycopg.Connection,
    settings: Settings,
    *,
    dedup_key: str,
    step_key: str,
    summary: str,
    severity: str,
    component: str,
    group: str,
    details: dict[str, Any],
    now: datetime,
) -> bool:
    """Queue a trigger (a new alert, or an update of the open one with this dedup_key)."""
    if not settings.pagerduty_routing_key:
        return False
    event = {
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": {
            "summary": summary[:MAX_SUMMARY],
            "source": SOURCE,
            "severity": severity,
            "timestamp": now.isoformat(),
            "component": component,
            "group": group,
            "class": component,
            "custom_details": details,
        },
        "client": "Refund Desk",
    }
    return paging.enqueue(conn, dedup_key=dedup_key, action="trigger", step_key=step_key, event=event, now=now)


def settle(
    conn: psycopg.Connection, settings: Settings, *, action: str, dedup_key: str, step_key: str, now: datetime
) -> bool:
    """Queue an acknowledge or resolve of an alert."""
    if not settings.pagerduty_routing_key:
        return False
    event = {"event_action": action, "dedup_key": dedup_key}
    return paging.enqueue(conn, dedup_key=dedup_key, action=action, step_key=step_key, event=event, now=now)


def deliver_next(pool: ConnectionPool, client: PagerDutyClient, *, now: datetime) -> bool:
    """Send the next queued event; False when none is due."""
    with db.transaction(pool) as conn:
        item = paging.claim(conn, now)
        if item is None:
            return False
        status, said = client.send(item.event)
        outcome = pagerduty_outcome(status)
        if outcome == "sent":
            paging.sent(conn, item, now)
        elif outcome == "dead":
            log.error("PagerDuty refused %s event %s as invalid: %s; dead-lettered", item.action, item.id, said)
            paging.dead(conn, item, error=said)
        elif outcome == "throttled":
            log.info("PagerDuty throttled %s event %s; waiting %.0f s", item.action, item.id, THROTTLED_SECONDS)
            paging.retry(conn, item, at=now + timedelta(seconds=THROTTLED_SECONDS), error=said, counted=False)
        else:
            delay = backoff(
                item.attempts + 1,
                base=RETRY_BASE_SECONDS,
                cap=RETRY_CAP_SECONDS,
                jitter=random.random(),  # noqa: S311
            )
            log.warning(
                "PagerDuty %s event %s failed (%s); retry in %.0f s", item.action, item.id, said, delay.total_seconds()
            )
            paging.retry(conn, item, at=now + delay, error=said or "unreachable")
        return True
