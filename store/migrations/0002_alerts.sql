-- On-call alerts: disputes' reminders, early fraud warnings, payment outcomes for failure rates,
-- and alert incidents (one alert per incident, updated, then a recovery note).

CREATE TABLE dispute_reminders (
    dispute_id text NOT NULL REFERENCES disputes (id),
    kind       text NOT NULL CHECK (kind IN ('72h', '24h')),
    sent_at    timestamptz NOT NULL,
    PRIMARY KEY (dispute_id, kind)  -- never twice, however many workers look
);

CREATE INDEX disputes_awaiting_evidence ON disputes (evidence_due_by)
    WHERE status IN ('needs_response', 'warning_needs_response') AND NOT evidence_submitted;

CREATE TABLE early_fraud_warnings (
    id                text PRIMARY KEY CHECK (id ~ '^issfr_'),
    charge_id         text,
    payment_intent_id text,
    account           text CHECK (account ~ '^acct_'),
    fraud_type        text NOT NULL,
    actionable        boolean NOT NULL,
    livemode          boolean NOT NULL DEFAULT false,
    stripe_created    timestamptz NOT NULL,
    observed_at       timestamptz NOT NULL,
    synced_at         timestamptz NOT NULL DEFAULT now()
);

-- One row per charge attempt, from charge.* or payment_intent.* events, whichever comes first.
CREATE TABLE payment_outcomes (
    charge_id    text PRIMARY KEY,
    account      text,
    succeeded    boolean NOT NULL,
    decline_code text,
    at           timestamptz NOT NULL
);
CREATE INDEX payment_outcomes_at ON payment_outcomes (at);

CREATE TABLE alert_incidents (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind              text NOT NULL CHECK (kind IN ('payment_failures', 'webhook_failures', 'stripe_key')),
    opened_at         timestamptz NOT NULL,
    last_seen_at      timestamptz NOT NULL,
    notified_rate     double precision,
    notified_at       timestamptz NOT NULL,
    healthy_since     timestamptz,
    closed_at         timestamptz,
    details           jsonb NOT NULL DEFAULT '{}'
);
-- At most one open incident of each kind: the second opener meets this index.
CREATE UNIQUE INDEX alert_incidents_one_open ON alert_incidents (kind) WHERE closed_at IS NULL;

-- Lookups list a payment's open requests; without this they scan every request ever made.
CREATE INDEX refund_requests_payment ON refund_requests (payment_id);
