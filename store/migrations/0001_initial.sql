-- The record of the refund desk. Money is bigint minor units plus a lowercase ISO currency,
-- exactly as Stripe sends it; every time is timestamptz. Constraints make the database itself
-- refuse states that must never exist.

CREATE DOMAIN currency_code AS text CHECK (VALUE ~ '^[a-z]{3}$');
CREATE DOMAIN minor_amount AS bigint CHECK (VALUE >= 0);

-- Payment intents and charges as last seen from Stripe (webhooks or API reads).
-- One row per payment intent, or per charge for charges made without one.
CREATE TABLE payments (
    id                text PRIMARY KEY CHECK (id ~ '^(pi|ch|py)_'),
    payment_intent_id text UNIQUE CHECK (payment_intent_id ~ '^pi_'),
    charge_id         text UNIQUE CHECK (charge_id ~ '^(ch|py)_'),
    account           text CHECK (account ~ '^acct_'),
    livemode          boolean NOT NULL DEFAULT false,
    amount            minor_amount NOT NULL,
    amount_captured   minor_amount NOT NULL DEFAULT 0,
    amount_refunded   minor_amount NOT NULL DEFAULT 0,
    currency          currency_code NOT NULL,
    status            text NOT NULL CHECK (status IN (
                        'requires_payment_method', 'requires_confirmation', 'requires_action',
                        'processing', 'requires_capture', 'canceled', 'succeeded',
                        'pending', 'failed')),
    charge_status     text CHECK (charge_status IN ('succeeded', 'pending', 'failed')),
    disputed          boolean NOT NULL DEFAULT false,
    customer_id       text,
    customer_email    text,
    card_brand        text,
    card_last4        text CHECK (card_last4 ~ '^[0-9]{4}$'),
    description       text,
    failure_code      text,
    failure_message   text,
    stripe_created    timestamptz NOT NULL,
    -- When the Stripe state we hold was true (event `created`, or the time of an API read), for
    -- the payment intent's fields and for the charge's; an older snapshot never overwrites a newer one.
    observed_at        timestamptz NOT NULL,
    charge_observed_at timestamptz,
    synced_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (amount_captured <= amount),
    CHECK (amount_refunded <= amount_captured),
    CHECK (payment_intent_id IS NOT NULL OR charge_id IS NOT NULL),
    CHECK (id = coalesce(payment_intent_id, charge_id))
);

-- Refund requests made through the bot; the approval workflow's state machine.
CREATE TABLE refund_requests (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payment_id       text NOT NULL CHECK (payment_id ~ '^(pi|ch|py)_'),
    charge_id        text,
    account          text CHECK (account ~ '^acct_'),
    amount           minor_amount NOT NULL CHECK (amount > 0),
    currency         currency_code NOT NULL,
    reason           text NOT NULL DEFAULT 'requested_by_customer'
                       CHECK (reason IN ('requested_by_customer', 'duplicate', 'fraudulent')),
    note             text CHECK (length(note) <= 2000),
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN (
                       'pending', 'approved', 'sent', 'succeeded', 'failed', 'canceled',
                       'rejected', 'expired')),
    requested_by     text NOT NULL,
    requested_via    text NOT NULL CHECK (requested_via IN ('slash_command', 'modal', 'fraud_warning', 'cli')),
    approvals        text[] NOT NULL DEFAULT '{}',
    approvals_needed smallint NOT NULL DEFAULT 1 CHECK (approvals_needed BETWEEN 0 AND 2),
    decided_by       text,
    decided_at       timestamptz,
    reject_reason    text,
    -- Fixed when the request is made and sent with every attempt, so Stripe creates one refund
    -- however often we retry; random so two installations sharing a Stripe account never collide.
    idempotency_key  text NOT NULL UNIQUE DEFAULT 'refund-request-' || gen_random_uuid(),
    stripe_refund_id text UNIQUE CHECK (stripe_refund_id ~ '^(re|pyr)_'),
    failure_message  text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    CHECK (status <> 'rejected' OR (reject_reason IS NOT NULL AND length(btrim(reject_reason)) > 0)),
    CHECK (status NOT IN ('sent', 'succeeded') OR decided_by IS NOT NULL),
    CHECK (status <> 'succeeded' OR stripe_refund_id IS NOT NULL)
);
-- One open request per payment at a time: the second asker is pointed at the first.
CREATE UNIQUE INDEX refund_requests_one_pending ON refund_requests (payment_id) WHERE status = 'pending';
CREATE INDEX refund_requests_open ON refund_requests (status, expires_at)
    WHERE status IN ('pending', 'approved', 'sent');

-- Refunds as Stripe reports them, wherever they were made.
CREATE TABLE refunds (
    id                text PRIMARY KEY CHECK (id ~ '^(re|pyr)_'),
    charge_id         text,
    payment_intent_id text,
    account           text CHECK (account ~ '^acct_'),
    amount            minor_amount NOT NULL,
    currency          currency_code NOT NULL,
    status            text NOT NULL CHECK (status IN (
                        'pending', 'requires_action', 'succeeded', 'failed', 'canceled')),
    reason            text,
    failure_reason    text,
    request_id        bigint REFERENCES refund_requests (id),
    stripe_created    timestamptz NOT NULL,
    observed_at       timestamptz NOT NULL,
    synced_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (charge_id IS NOT NULL OR payment_intent_id IS NOT NULL)
);
CREATE INDEX refunds_by_charge ON refunds (charge_id);
CREATE INDEX refunds_by_payment_intent ON refunds (payment_intent_id);

-- Disputes and inquiries (dp_ and the newer du_ ids).
CREATE TABLE disputes (
    id                 text PRIMARY KEY CHECK (id ~ '^(dp|du)_'),
    charge_id          text,
    payment_intent_id  text,
    account            text CHECK (account ~ '^acct_'),
    livemode           boolean NOT NULL DEFAULT false,
    amount             minor_amount NOT NULL,
    currency           currency_code NOT NULL,
    status             text NOT NULL CHECK (status IN (
                         'warning_needs_response', 'warning_under_review', 'warning_closed',
                         'needs_response', 'under_review', 'won', 'lost', 'prevented')),
    reason             text,
    evidence_due_by    timestamptz,
    evidence_submitted boolean NOT NULL DEFAULT false,
    owner              text,
    stripe_created     timestamptz NOT NULL,
    observed_at        timestamptz NOT NULL,
    synced_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX disputes_by_charge ON disputes (charge_id);
CREATE INDEX disputes_by_payment_intent ON disputes (payment_intent_id);

-- The Stripe event inbox: stored before the webhook is acknowledged, processed after.
CREATE TABLE stripe_events (
    id              text PRIMARY KEY CHECK (id ~ '^evt_'),
    type            text NOT NULL,
    account         text,
    api_version     text,
    livemode        boolean NOT NULL DEFAULT false,
    stripe_created  timestamptz NOT NULL,
    payload         jsonb NOT NULL,
    source          text NOT NULL DEFAULT 'webhook' CHECK (source IN ('webhook', 'backfill', 'replay')),
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN (
                      'pending', 'processed', 'ignored', 'failed', 'dead')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz,
    last_error      text,
    received_at     timestamptz NOT NULL DEFAULT now(),
    processed_at    timestamptz
);
-- The worker takes the oldest due event first.
CREATE INDEX stripe_events_due ON stripe_events (stripe_created, received_at) WHERE status IN ('pending', 'failed');
CREATE INDEX stripe_events_created ON stripe_events (stripe_created);

-- Outgoing Slack messages, written in the same transaction as the change they announce and
-- delivered by the worker, so Slack being slow or down never blocks or loses a state change.
CREATE TABLE slack_outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    method          text NOT NULL CHECK (method IN ('chat.postMessage', 'chat.update', 'chat.postEphemeral')),
    channel         text NOT NULL,
    -- A logical name for this message (e.g. 'request:42'); its Slack ts is recorded on delivery.
    message_key     text UNIQUE,
    -- The logical message this one replies to or updates; delivered only once that one exists.
    parent_key      text,
    payload         jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'sent', 'dead')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    slack_ts        text
);
CREATE INDEX slack_outbox_due ON slack_outbox (channel, id) WHERE status = 'queued';
CREATE INDEX slack_outbox_parent ON slack_outbox (parent_key) WHERE parent_key IS NOT NULL;

-- Slack timestamps of delivered messages, by logical name: where replies and updates go.
CREATE TABLE slack_messages (
    key     text PRIMARY KEY,
    channel text NOT NULL,
    ts      text NOT NULL
);

-- When each channel may get its next message (Slack allows about one per second per channel,
-- and a 429 names how long to wait).
CREATE TABLE slack_pace (
    channel text PRIMARY KEY,
    next_at timestamptz NOT NULL
);

-- Who did what, when, from where, with which Stripe ids. Append-only, enforced below.
CREATE TABLE audit_log (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text NOT NULL,
    surface    text NOT NULL CHECK (surface IN ('slack', 'webhook', 'worker', 'cli', 'system')),
    action     text NOT NULL,
    subject    text NOT NULL,
    stripe_ids text[] NOT NULL DEFAULT '{}',
    details    jsonb NOT NULL DEFAULT '{}',
    -- Replays of the same cause (a redelivered event) must not write a second record.
    cause      text UNIQUE
);
CREATE INDEX audit_log_subject ON audit_log (subject, at);

CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP;
END;
$$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();
