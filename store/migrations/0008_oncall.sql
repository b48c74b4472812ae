-- On-call that pages and escalates: incidents per Connect account with a PagerDuty dedup key of
-- their own, acknowledged from Slack and escalated once; durable queues for PagerDuty and for
-- outgoing (Standard Webhooks) hooks; connected accounts and which of them owns an object.

-- An incident may concern one connected account (NULL: everything). The kinds are named in code
-- (failure rates, webhook delivery and silence, the key, the backlog, reconciliation...), so the
-- database only checks their shape.
ALTER TABLE alert_incidents DROP CONSTRAINT IF EXISTS alert_incidents_kind_check;
ALTER TABLE alert_incidents ADD CONSTRAINT alert_incidents_kind_check CHECK (kind ~ '^[a-z][a-z_]*$');
ALTER TABLE alert_incidents ADD COLUMN account text CHECK (account ~ '^acct_');
-- Random, so two installations paging one PagerDuty service never share an alert.
ALTER TABLE alert_incidents ADD COLUMN dedup_key text NOT NULL DEFAULT 'refund-desk-' || gen_random_uuid();
ALTER TABLE alert_incidents ADD COLUMN acknowledged_at timestamptz;
ALTER TABLE alert_incidents ADD COLUMN acknowledged_by text;
ALTER TABLE alert_incidents ADD COLUMN escalated_at timestamptz;
CREATE UNIQUE INDEX alert_incidents_dedup_key ON alert_incidents (dedup_key);
-- At most one open incident of each kind per account (and one for all accounts).
DROP INDEX alert_incidents_one_open;
CREATE UNIQUE INDEX alert_incidents_one_open ON alert_incidents (kind, (coalesce(account, ''))) WHERE closed_at IS NULL;
CREATE INDEX alert_incidents_open ON alert_incidents (opened_at) WHERE closed_at IS NULL;

-- The dispute alert is refreshed once its evidence deadline has passed (its relative time would lie).
ALTER TABLE dispute_reminders DROP CONSTRAINT dispute_reminders_kind_check;
ALTER TABLE dispute_reminders ADD CONSTRAINT dispute_reminders_kind_check CHECK (kind IN ('72h', '24h', 'passed'));

-- PagerDuty Events API v2 events, written with the incident change they announce and sent by the
-- worker: PagerDuty being down never blocks the Slack alert, and nothing is lost.
CREATE TABLE pagerduty_outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dedup_key       text NOT NULL,
    action          text NOT NULL CHECK (action IN ('trigger', 'acknowledge', 'resolve')),
    -- The logical step (e.g. 'incident:7:open'), so a second worker or a replay never queues it twice.
    step_key        text UNIQUE,
    -- The event without routing_key: the key stays in the environment, never in the database.
    event           jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'sent', 'dead')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz
);
-- Per alert in order: an acknowledge or resolve never overtakes its trigger.
CREATE INDEX pagerduty_outbox_due ON pagerduty_outbox (dedup_key, id) WHERE status = 'queued';

-- Outgoing hooks, one row per message and endpoint; webhook-id stays the same on every attempt.
CREATE TABLE webhook_outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id      text NOT NULL,
    endpoint        text NOT NULL,
    type            text NOT NULL,
    payload         jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'sent', 'dead')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    UNIQUE (message_id, endpoint)
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at) WHERE status = 'queued';

-- Stripe Connect accounts as last seen (account.updated, account.application.*, capability.updated),
-- or only known to exist (Stripe's accounts list, an event that named them).
CREATE TABLE connected_accounts (
    id              text PRIMARY KEY CHECK (id ~ '^acct_'),
    name            text,
    charges_enabled boolean,
    payouts_enabled boolean,
    disabled_reason text,
    currently_due   text[] NOT NULL DEFAULT '{}',
    past_due        text[] NOT NULL DEFAULT '{}',
    -- {"card_payments": {"status": "active", "reason": null, "at": 1621683300}, ...}
    capabilities    jsonb NOT NULL DEFAULT '{}',
    connected       boolean NOT NULL DEFAULT true,
    -- When the account snapshot we hold was true; an older one never overwrites it.
    observed_at     timestamptz,
    connection_at   timestamptz,
    -- The alert of each problem still open: {"charges_disabled": "account:acct_1:charges_disabled:evt_…"}.
    open_alerts     jsonb NOT NULL DEFAULT '{}',
    first_seen_at   timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Which connected account owns an object a lookup found by trying the accounts.
CREATE TABLE object_accounts (
    object_id text PRIMARY KEY,
    account   text NOT NULL CHECK (account ~ '^acct_'),
    found_at  timestamptz NOT NULL DEFAULT now()
);

-- Webhook silence: when did the last event arrive by webhook (not by backfill)?
CREATE INDEX stripe_events_webhook_received ON stripe_events (received_at) WHERE source = 'webhook';
