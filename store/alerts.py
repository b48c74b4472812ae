"""On-call state: dispute reminders and owners, early fraud warnings, payment outcomes, incidents."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from domain.alerts import Incident, Window
from domain.models import FraudWarning

ASSIGN = """
UPDATE disputes SET owner = %(user)s WHERE id = %(id)s AND owner IS NULL
RETURNING id
"""
OWNER = "SELECT owner FROM disputes WHERE id = %(id)s"

AWAITING_EVIDENCE = """
SELECT d.id, coalesce(array_agg(r.kind) FILTER (WHERE r.kind IS NOT NULL), '{}') AS sent
FROM disputes d LEFT JOIN dispute_reminders r ON r.dispute_id = d.id
WHERE d.status IN ('needs_response', 'warning_needs_response') AND NOT d.evidence_submitted
  AND d.evidence_due_by > %(now)s AND d.evidence_due_by <= %(now)s + interval '72 hours'
GROUP BY d.id
"""
REMINDED = """
INSERT INTO dispute_reminders (dispute_id, kind, sent_at) VALUES (%(id)s, %(kind)s, %(now)s)
ON CONFLICT DO NOTHING RETURNING dispute_id
"""

SAVE_EFW = """
INSERT INTO early_fraud_warnings (id, charge_id, payment_intent_id, account, fraud_type, actionable, livemode,
                                  stripe_created, observed_at)
VALUES (%(id)s, %(charge)s, %(payment_intent)s, %(account)s, %(fraud_type)s, %(actionable)s, %(livemode)s,
        %(created)s, %(observed_at)s)
ON CONFLICT (id) DO UPDATE SET actionable = EXCLUDED.actionable, fraud_type = EXCLUDED.fraud_type,
    observed_at = EXCLUDED.observed_at, synced_at = now()
WHERE early_fraud_warnings.observed_at < EXCLUDED.observed_at
  AND (early_fraud_warnings.actionable, early_fraud_warnings.fraud_type)
      IS DISTINCT FROM (EXCLUDED.actionable, EXCLUDED.fraud_type)
RETURNING (xmax = 0) AS inserted
"""

OUTCOME = """
INSERT INTO payment_outcomes (charge_id, account, succeeded, decline_code, at)
VALUES (%(charge_id)s, %(account)s, %(succeeded)s, %(decline_code)s, %(at)s)
ON CONFLICT (charge_id) DO NOTHING
"""

PAYMENT_WINDOW = """
SELECT count(*) AS attempts, count(*) FILTER (WHERE NOT succeeded) AS failures
FROM payment_outcomes WHERE at > %(since)s AND at <= %(now)s
"""
TOP_CODES = """
SELECT coalesce(decline_code, 'unknown'), count(*) FROM payment_outcomes
WHERE at > %(since)s AND at <= %(now)s AND NOT succeeded
GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 3
"""
WEBHOOK_WINDOW = """
SELECT count(*) AS attempts, count(*) FILTER (WHERE status IN ('failed', 'dead')) AS failures
FROM stripe_events WHERE received_at > %(since)s AND received_at <= %(now)s
"""

SERIALIZE = "SELECT pg_advisory_xact_lock(hashtext('refund-desk incident ' || %(kind)s))"
OPEN_INCIDENT = """
SELECT id, opened_at, notified_rate, notified_at, healthy_since, last_seen_at, details,
       kind, account, dedup_key, acknowledged_by, escalated_at
FROM alert_incidents
WHERE kind = %(kind)s AND account IS NOT DISTINCT FROM %(account)s AND closed_at IS NULL FOR UPDATE
"""
OPEN = """
INSERT INTO alert_incidents (kind, account, opened_at, last_seen_at, notified_rate, notified_at, details)
VALUES (%(kind)s, %(account)s, %(now)s, %(now)s, %(rate)s, %(now)s, %(details)s)
ON CONFLICT DO NOTHING RETURNING id
"""
NOTIFIED = """
UPDATE alert_incidents SET notified_rate = %(rate)s, notified_at = %(now)s, last_seen_at = %(now)s,
       details = details || %(details)s
WHERE id = %(id)s
"""
HEALTH = "UPDATE alert_incidents SET healthy_since = %(since)s, last_seen_at = %(seen)s WHERE id = %(id)s"
SEEN = "UPDATE alert_incidents SET last_seen_at = %(now)s WHERE id = %(id)s"
CLOSE = "UPDATE alert_incidents SET closed_at = %(now)s, healthy_since = %(since)s WHERE id = %(id)s"


@dataclass(frozen=True, slots=True)
class OpenIncident:
    """An open incident row."""

    id: int
    opened_at: datetime
    notified_rate: float | None
    notified_at: datetime
    healthy_since: datetime | None
    last_seen_at: datetime
    details: dict
    kind: str = ""
    account: str | None = None  # a Connect account's incident; None: all accounts
    dedup_key: str = ""  # its PagerDuty alert
    acknowledged_by: str | None = None
    escalated_at: datetime | None = None

    def as_incident(self) -> Incident:
        """The pure view the incident rules take."""
        return Incident(self.opened_at, self.notified_rate, self.notified_at, self.healthy_since)


def assign(conn: psycopg.Connection, dispute_id: str, user: str) -> bool:
    """Record the owner; False when someone already took it."""
    return conn.execute(ASSIGN, {"id": dispute_id, "user": user}).fetchone() is not None


def owner(conn: psycopg.Connection, dispute_id: str) -> str | None:
    """Who took a dispute."""
    row = conn.execute(OWNER, {"id": dispute_id}).fetchone()
    return row[0] if row else None


def awaiting_evidence(conn: psycopg.Connection, now: datetime) -> list[tuple[str, list[str]]]:
    """Disputes within 72 h of their evidence deadline, with the reminders already sent."""
    return conn.execute(AWAITING_EVIDENCE, {"now": now}).fetchall()


def mark_reminded(conn: psycopg.Connection, dispute_id: str, kind: str, now: datetime) -> bool:
    """Claim a reminder; False when it was already sent (by us or another worker)."""
    return conn.execute(REMINDED, {"id": dispute_id, "kind": kind, "now": now}).fetchone() is not None


def save_efw(conn: psycopg.Connection, efw: FraudWarning, observed_at: datetime) -> bool | None:
    """Store a warning: True when new, False when changed, None when nothing changed."""
    row = conn.execute(
        SAVE_EFW,
        {
            "id": efw.id,
            "charge": efw.charge_id,
            "payment_intent": efw.payment_intent_id,
            "account": efw.account,
            "fraud_type": efw.fraud_type,
            "actionable": efw.actionable,
            "livemode": efw.livemode,
            "created": efw.stripe_created,
            "observed_at": observed_at,
        },
    ).fetchone()
    return None if row is None else bool(row[0])


def record_outcome(
    conn: psycopg.Connection,
    *,
    charge_id: str,
    account: str | None,
    succeeded: bool,
    decline_code: str | None,
    at: datetime,
) -> None:
    """Count one payment attempt (once per charge, whichever event told us first)."""
    conn.execute(
        OUTCOME,
        {"charge_id": charge_id, "account": account, "succeeded": succeeded, "decline_code": decline_code, "at": at},
    )


def payment_window(conn: psycopg.Connection, since: datetime, now: datetime) -> Window:
    """Payment attempts and failures in (since, now], with the top decline codes."""
    attempts, failures = conn.execute(PAYMENT_WINDOW, {"since": since, "now": now}).fetchone()
    codes = tuple(conn.execute(TOP_CODES, {"since": since, "now": now}).fetchall()) if failures else ()
    return Window(attempts, failures, codes)


def webhook_window(conn: psycopg.Connection, since: datetime, now: datetime) -> Window:
    """Events received in (since, now] and how many of them failed to process."""
    attempts, failures = conn.execute(WEBHOOK_WINDOW, {"since": since, "now": now}).fetchone()
    return Window(attempts, failures)


def serialize(conn: psycopg.Connection, kind: str) -> None:
    """One worker at a time evaluates an incident kind (until the transaction ends)."""
    conn.execute(SERIALIZE, {"kind": kind})


def open_incident(conn: psycopg.Connection, kind: str, account: str | None = None) -> OpenIncident | None:
    """The open incident of a kind (for one Connect account, or for all), locked."""
    with conn.cursor(row_factory=class_row(OpenIncident)) as cur:
        return cur.execute(OPEN_INCIDENT, {"kind": kind, "account": account}).fetchone()


def open_new(
    conn: psycopg.Connection,
    kind: str,
    rate: float | None,
    now: datetime,
    details: dict,
    account: str | None = None,
) -> int | None:
    """Open an incident (for one Connect account, or for all); None when one is already open."""
    params = {"kind": kind, "account": account, "rate": rate, "now": now, "details": Jsonb(details)}
    row = conn.execute(OPEN, params).fetchone()
    return row[0] if row else None


def notified(conn: psycopg.Connection, incident_id: int, rate: float, now: datetime, details: dict) -> None:
    """Record that on-call was told of this rate (and what the alert now says)."""
    conn.execute(NOTIFIED, {"id": incident_id, "rate": rate, "now": now, "details": Jsonb(details)})


def health(conn: psycopg.Connection, incident_id: int, since: datetime | None, seen: datetime) -> None:
    """Record since when the rate has been healthy (None: not healthy)."""
    conn.execute(HEALTH, {"id": incident_id, "since": since, "seen": seen})


def seen(conn: psycopg.Connection, incident_id: int, now: datetime) -> None:
    """The problem was seen again."""
    conn.execute(SEEN, {"id": incident_id, "now": now})


def close(conn: psycopg.Connection, incident_id: int, now: datetime, since: datetime | None) -> None:
    """Close an incident."""
    conn.execute(CLOSE, {"id": incident_id, "now": now, "since": since})


# --- paging, escalation, per-account rates, webhook delivery (issue #13) -----------------------------

INCIDENT = """
SELECT id, opened_at, notified_rate, notified_at, healthy_since, last_seen_at, details,
       kind, account, dedup_key, acknowledged_by, escalated_at
FROM alert_incidents WHERE id = %(id)s
"""
ACKNOWLEDGE = """
UPDATE alert_incidents SET acknowledged_at = %(now)s, acknowledged_by = %(user)s
WHERE id = %(id)s AND closed_at IS NULL AND acknowledged_at IS NULL
RETURNING id
"""
ESCALATE = """
UPDATE alert_incidents SET escalated_at = %(now)s
WHERE id = %(id)s AND closed_at IS NULL AND escalated_at IS NULL
RETURNING id
"""
DUE_ESCALATION = """
SELECT id FROM alert_incidents
WHERE closed_at IS NULL AND escalated_at IS NULL AND opened_at <= %(before)s
ORDER BY opened_at
"""
ACCOUNT_PAYMENT_WINDOW = """
SELECT count(*) AS attempts, count(*) FILTER (WHERE NOT succeeded) AS failures
FROM payment_outcomes WHERE at > %(since)s AND at <= %(now)s AND account = %(account)s
"""
ACCOUNT_TOP_CODES = """
SELECT coalesce(decline_code, 'unknown'), count(*) FROM payment_outcomes
WHERE at > %(since)s AND at <= %(now)s AND NOT succeeded AND account = %(account)s
GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 3
"""
# Accounts to evaluate: those with attempts in the window, and those whose incident is still open.
RATE_ACCOUNTS = """
SELECT account FROM payment_outcomes WHERE at > %(since)s AND at <= %(now)s AND account IS NOT NULL
UNION
SELECT account FROM alert_incidents WHERE kind = %(kind)s AND closed_at IS NULL AND account IS NOT NULL
ORDER BY 1
"""
EVENTS_CREATED = """
SELECT count(*) FROM stripe_events WHERE stripe_created > %(since)s AND stripe_created <= %(now)s
"""
LAST_WEBHOOK = "SELECT max(received_at) FROM stripe_events WHERE source = 'webhook'"


def incident(conn: psycopg.Connection, incident_id: int) -> OpenIncident | None:
    """An incident by id, open or not."""
    with conn.cursor(row_factory=class_row(OpenIncident)) as cur:
        return cur.execute(INCIDENT, {"id": incident_id}).fetchone()


def acknowledge(conn: psycopg.Connection, incident_id: int, user: str, now: datetime) -> bool:
    """Record who acknowledged an open incident; False when it is closed or someone already did."""
    return conn.execute(ACKNOWLEDGE, {"id": incident_id, "user": user, "now": now}).fetchone() is not None


def escalate(conn: psycopg.Connection, incident_id: int, now: datetime) -> bool:
    """Mark an open incident escalated; False when it closed or another worker escalated it first."""
    return conn.execute(ESCALATE, {"id": incident_id, "now": now}).fetchone() is not None


def due_escalation(conn: psycopg.Connection, before: datetime) -> list[int]:
    """Open incidents opened at or before `before` that have not escalated yet."""
    return [row[0] for row in conn.execute(DUE_ESCALATION, {"before": before}).fetchall()]


def account_payment_window(conn: psycopg.Connection, account: str, since: datetime, now: datetime) -> Window:
    """One connected account's payment attempts and failures in (since, now], with its top decline codes."""
    params = {"since": since, "now": now, "account": account}
    attempts, failures = conn.execute(ACCOUNT_PAYMENT_WINDOW, params).fetchone()
    codes = tuple(conn.execute(ACCOUNT_TOP_CODES, params).fetchall()) if failures else ()
    return Window(attempts, failures, codes)


def rate_accounts(conn: psycopg.Connection, kind: str, since: datetime, now: datetime) -> list[str]:
    """Connected accounts whose failure rate to evaluate now."""
    return [row[0] for row in conn.execute(RATE_ACCOUNTS, {"kind": kind, "since": since, "now": now}).fetchall()]


def events_created(conn: psycopg.Connection, since: datetime, now: datetime) -> int:
    """Stored events Stripe created in (since, now], however they reached us."""
    return conn.execute(EVENTS_CREATED, {"since": since, "now": now}).fetchone()[0]


def last_webhook(conn: psycopg.Connection) -> datetime | None:
    """When the last event arrived by webhook (backfilled and fetched ones do not count)."""
    return conn.execute(LAST_WEBHOOK).fetchone()[0]


DEADLINE_PASSED = """
SELECT d.id FROM disputes d
WHERE d.status IN ('needs_response', 'warning_needs_response') AND NOT d.evidence_submitted
  AND d.evidence_due_by <= %(now)s AND d.evidence_due_by > %(now)s - interval '30 days'
  AND NOT EXISTS (SELECT 1 FROM dispute_reminders r WHERE r.dispute_id = d.id AND r.kind = 'passed')
ORDER BY d.evidence_due_by
"""


def deadline_passed(conn: psycopg.Connection, now: datetime) -> list[str]:
    """Disputes whose evidence deadline passed without evidence, not yet told (the last 30 days)."""
    return [row[0] for row in conn.execute(DEADLINE_PASSED, {"now": now}).fetchall()]
