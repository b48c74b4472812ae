"""Prometheus metrics: counters kept by the processes, gauges read from the database at scrape time.

Under gunicorn, set PROMETHEUS_MULTIPROC_DIR to an empty folder so counters add up across workers
(prometheus_client's multiprocess mode); without it each worker reports its own counters.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from psycopg_pool import ConnectionPool

from domain.clock import utcnow
from domain.errors import DatabaseUnavailable
from domain.priority import NAMES as priority_names
from store import db, gauges, hooks, outbox, paging
from store import events as event_store

log = logging.getLogger(__name__)

WEBHOOKS = Counter(
    "refund_desk_webhook_requests_total", "Stripe webhook requests by outcome and event type", ["outcome", "type"]
)
EVENTS_APPLIED = Counter(
    "refund_desk_events_processed_total", "Stripe events processed by the worker", ["type", "outcome"]
)
ALERTS = Counter("refund_desk_alerts_total", "On-call alerts raised, by kind", ["kind"])
PROCESSING_SECONDS = Histogram(
    "refund_desk_event_processing_seconds",
    "From receiving a Stripe event to having applied it",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
)
SLACK_DELIVERIES = Counter(
    "refund_desk_slack_deliveries_total", "Slack outbox delivery attempts by outcome", ["outcome"]
)


class DatabaseGauges(Collector):
    """Queue depths and ages, read from Postgres when Prometheus scrapes."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    def collect(self) -> Iterator[GaugeMetricFamily]:
        events = GaugeMetricFamily(
            "refund_desk_stripe_events_backlog", "Stored events not yet applied, by status", labels=["status"]
        )
        queued = GaugeMetricFamily("refund_desk_slack_outbox_queued", "Slack messages waiting for delivery")
        dead = GaugeMetricFamily("refund_desk_slack_outbox_dead", "Slack messages given up on")
        age = GaugeMetricFamily("refund_desk_slack_outbox_oldest_age_seconds", "Age of the oldest queued message")
        up = GaugeMetricFamily("refund_desk_database_up", "Whether the database answered this scrape")
        requests = GaugeMetricFamily("refund_desk_refund_requests", "Refund requests by status", labels=["status"])
        due = GaugeMetricFamily(
            "refund_desk_stripe_events_due", "Stored events due to be applied now, by priority", labels=["priority"]
        )
        due_age = GaugeMetricFamily(
            "refund_desk_stripe_events_oldest_due_age_seconds",
            "How long the longest-waiting due event has been due (since stored, or since its retry time), by priority",
            labels=["priority"],
        )
        try:
            with db.connection(self.pool, timeout=2) as conn:
                now = utcnow()
                by_priority = event_store.backlog(conn, now)
                backlog = gauges.event_backlog(conn)
                n_queued, n_dead, oldest = outbox.stats(conn)
                by_status = gauges.requests_by_status(conn)
        except DatabaseUnavailable:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        for status in ("pending", "failed", "dead"):
            events.add_metric([status], backlog.get(status, 0))
        queued.add_metric([], n_queued)
        dead.add_metric([], n_dead)
        age.add_metric([], (utcnow() - oldest).total_seconds() if oldest else 0)
        for status in ("pending", "approved", "sent", "succeeded", "failed", "canceled", "rejected", "expired"):
            requests.add_metric([status], by_status.get(status, 0))
        for priority, name in priority_names.items():
            waiting = by_priority.get(priority)
            since = waiting.oldest_due_since if waiting else None
            due.add_metric([name], waiting.due if waiting else 0)
            due_age.add_metric([name], max(0.0, (now - since).total_seconds()) if since else 0)
        yield from (up, events, queued, dead, age, requests, due, due_age)


def registry_for(pool: ConnectionPool) -> CollectorRegistry:
    """The registry /metrics renders: process counters (or the multiprocess set) plus database gauges."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        for collector in (WEBHOOKS, EVENTS_APPLIED, SLACK_DELIVERIES, ALERTS, PROCESSING_SECONDS):
            registry.register(collector)
    registry.register(DatabaseGauges(pool))
    registry.register(PagingQueues(pool))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The text exposition format."""
    return generate_latest(registry)


class PagingQueues(Collector):
    """The PagerDuty and outgoing-hook queues: waiting, given up on, oldest waiting (read at scrape time)."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    def collect(self) -> Iterator[GaugeMetricFamily]:
        queued = GaugeMetricFamily("refund_desk_outbound_queued", "Events waiting to be sent", labels=["queue"])
        dead = GaugeMetricFamily("refund_desk_outbound_dead", "Events given up on (kept)", labels=["queue"])
        age = GaugeMetricFamily(
            "refund_desk_outbound_oldest_age_seconds", "Age of the oldest waiting event", labels=["queue"]
        )
        try:
            with db.connection(self.pool, timeout=2) as conn:
                stats = {"pagerduty": paging.stats(conn), "hooks": hooks.stats(conn)}
        except DatabaseUnavailable:
            return  # DatabaseGauges reports the database down
        now = utcnow()
        for queue, (n_queued, n_dead, oldest) in stats.items():
            queued.add_metric([queue], n_queued)
            dead.add_metric([queue], n_dead)
            age.add_metric([queue], (now - oldest).total_seconds() if oldest else 0)
        yield from (queued, dead, age)
