-- History, the Home tab and the operator API (#11).

-- Lists page newest first by (created_at, id), through keyset pagination: one index per way of
-- filtering, so page 500 costs what page 1 costs.
CREATE INDEX refund_requests_recent ON refund_requests (created_at DESC, id DESC);
CREATE INDEX refund_requests_by_requester ON refund_requests (requested_by, created_at DESC, id DESC);
CREATE INDEX refund_requests_by_status ON refund_requests (status, created_at DESC, id DESC);
CREATE INDEX refunds_recent ON refunds (stripe_created DESC, id DESC);
CREATE INDEX refunds_by_status ON refunds (status, stripe_created DESC, id DESC);
CREATE INDEX refunds_by_request ON refunds (request_id) WHERE request_id IS NOT NULL;
-- Disputes list the soonest evidence deadline first; those without one last.
CREATE INDEX disputes_by_deadline ON disputes ((coalesce(evidence_due_by, '9999-12-31 00:00:00+00')), id);

-- Other systems file requests through the API; what they do is audited as such.
ALTER TABLE refund_requests DROP CONSTRAINT refund_requests_requested_via_check;
ALTER TABLE refund_requests ADD CONSTRAINT refund_requests_requested_via_check
    CHECK (requested_via IN ('slash_command', 'modal', 'fraud_warning', 'cli', 'api'));
ALTER TABLE audit_log DROP CONSTRAINT audit_log_surface_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_surface_check
    CHECK (surface IN ('slack', 'webhook', 'worker', 'cli', 'system', 'api'));

-- API keys: only a SHA-256 of each key is kept (keys are 256 random bits, so a slow hash adds
-- nothing); the key itself is shown once, when it is made. A name is reused only once revoked.
CREATE TABLE api_keys (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
    key_hash    text NOT NULL UNIQUE CHECK (key_hash ~ '^[0-9a-f]{64}$'),
    prefix      text NOT NULL,
    scopes      text[] NOT NULL CHECK (cardinality(scopes) > 0 AND scopes <@ ARRAY['read', 'request']),
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);
CREATE UNIQUE INDEX api_keys_live_name ON api_keys (name) WHERE revoked_at IS NULL;

-- Each key's token bucket. Unlogged: a commit that touches only this table does not wait for the
-- WAL to reach disk, so counting a request costs no fsync; after a crash the buckets start full.
CREATE UNLOGGED TABLE api_rate (
    key_id  bigint PRIMARY KEY,
    tokens  double precision NOT NULL,
    at      timestamptz NOT NULL,
    allowed boolean NOT NULL
);

-- Idempotency-Key: the first answer to a key and body, replayed to every retry of it.
CREATE TABLE api_idempotency (
    key_id          bigint NOT NULL REFERENCES api_keys (id),
    idempotency_key text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    request_hash    text NOT NULL,
    status          smallint,          -- NULL while the first request is still being answered
    response        jsonb,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (key_id, idempotency_key)
);

-- Home tabs we published, and what they show: a change to what someone sees marks their tab
-- stale, and the worker publishes it again.
CREATE TABLE home_tabs (
    user_id      text PRIMARY KEY,
    shows        text[] NOT NULL DEFAULT '{}',
    published_at timestamptz NOT NULL,
    stale_since  timestamptz
);
CREATE INDEX home_tabs_stale ON home_tabs (stale_since) WHERE stale_since IS NOT NULL;
