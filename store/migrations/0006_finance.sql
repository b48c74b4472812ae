-- Finance: payouts as Stripe reports them, daily and per-payout reconciliation runs with their
-- findings, claims on the scheduled finance jobs, and a hash chain that seals the audit log.

CREATE TABLE payouts (
    id              text PRIMARY KEY CHECK (id ~ '^po_'),
    account         text CHECK (account ~ '^acct_'),
    livemode        boolean NOT NULL DEFAULT false,
    amount          minor_amount NOT NULL,
    currency        currency_code NOT NULL,
    status          text NOT NULL,
    automatic       boolean NOT NULL DEFAULT true,
    arrival_date    timestamptz,
    failure_code    text,
    failure_message text,
    stripe_created  timestamptz NOT NULL,
    observed_at     timestamptz NOT NULL,
    synced_at       timestamptz NOT NULL DEFAULT now(),
    -- A paid payout waits for the worker to sum its balance transactions (a Stripe call, never made
    -- inside an event's transaction); NULL once reconciled or when there is nothing to do.
    reconcile_due_at timestamptz
);
CREATE INDEX payouts_reconcile_due ON payouts (reconcile_due_at) WHERE reconcile_due_at IS NOT NULL;

-- One reconciliation of a day (per Stripe account) or of a payout. A re-run replaces the result:
-- the newest finished run of a day or payout is `current`, the ones before stay as history.
CREATE TABLE recon_runs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scope       text NOT NULL CHECK (scope IN ('day', 'payout')),
    account     text CHECK (account ~ '^acct_'),
    day         date,
    payout_id   text CHECK (payout_id ~ '^po_'),
    status      text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'clean', 'discrepancies', 'failed')),
    flagged     boolean NOT NULL DEFAULT false,
    current     boolean NOT NULL DEFAULT false,
    txn_count   bigint NOT NULL DEFAULT 0 CHECK (txn_count >= 0),
    totals      jsonb NOT NULL DEFAULT '[]',
    changes     jsonb NOT NULL DEFAULT '{}',
    replaces    bigint REFERENCES recon_runs (id),
    error       text,
    started_via text NOT NULL CHECK (started_via IN ('schedule', 'cli', 'webhook', 'slack')),
    started_by  text,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz,
    CHECK ((scope = 'day') = (day IS NOT NULL)),
    CHECK ((scope = 'payout') = (payout_id IS NOT NULL)),
    CHECK (NOT current OR status IN ('clean', 'discrepancies'))
);
CREATE UNIQUE INDEX recon_runs_current_day ON recon_runs (coalesce(account, ''), day) WHERE current AND scope = 'day';
CREATE UNIQUE INDEX recon_runs_current_payout ON recon_runs (payout_id) WHERE current AND scope = 'payout';
CREATE INDEX recon_runs_by_day ON recon_runs (day, account) WHERE scope = 'day';

-- What a run found: an item whose money differs between Stripe and our records. `expected` is
-- what our records say moved the balance, `actual` what Stripe's balance transactions say (signed
-- like them, minor units); a later run that no longer finds it marks it resolved.
CREATE TABLE recon_findings (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id          bigint NOT NULL REFERENCES recon_runs (id),
    kind            text NOT NULL,
    subject         text NOT NULL,
    currency        currency_code NOT NULL,
    expected        bigint NOT NULL,
    actual          bigint NOT NULL,
    difference      bigint NOT NULL,
    flagged         boolean NOT NULL,
    cause           text NOT NULL,
    stripe_ids      text[] NOT NULL DEFAULT '{}',
    details         jsonb NOT NULL DEFAULT '{}',
    resolved_at     timestamptz,
    resolved_by_run bigint REFERENCES recon_runs (id),
    UNIQUE (run_id, kind, subject, currency)
);

-- Scheduled finance work claimed once however many workers run (the daily runs, the monthly export).
CREATE TABLE finance_jobs (
    kind            text NOT NULL CHECK (kind IN ('reconcile_day', 'monthly_export')),
    key             text NOT NULL,
    state           text NOT NULL CHECK (state IN ('running', 'done', 'failed')),
    attempts        integer NOT NULL DEFAULT 1 CHECK (attempts >= 0),
    claimed_at      timestamptz NOT NULL,
    finished_at     timestamptz,
    next_attempt_at timestamptz,
    error           text,
    PRIMARY KEY (kind, key)
);

-- The audit log's hash chain. Records are sealed after they commit, by one sealer at a time, in
-- the order they became visible: a record that commits after a later id was sealed is simply
-- sealed next, so commits out of id order never break the chain, and writers never wait on it.
-- hash = sha256(prev_hash || content_hash); the first record's prev_hash is 32 zero bytes.
CREATE TABLE audit_chain (
    seq          bigint PRIMARY KEY CHECK (seq > 0),
    -- No foreign key: a removed record must leave its link behind, as evidence.
    record_id    bigint NOT NULL UNIQUE,
    content_hash bytea NOT NULL CHECK (length(content_hash) = 32),
    prev_hash    bytea NOT NULL CHECK (length(prev_hash) = 32),
    hash         bytea NOT NULL CHECK (length(hash) = 32),
    sealed_at    timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION finance_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP;
END;
$$;
CREATE TRIGGER audit_chain_no_update BEFORE UPDATE OR DELETE ON audit_chain
    FOR EACH ROW EXECUTE FUNCTION finance_is_append_only();
CREATE TRIGGER audit_chain_no_truncate BEFORE TRUNCATE ON audit_chain
    FOR EACH STATEMENT EXECUTE FUNCTION finance_is_append_only();

-- Records waiting to be sealed, queued by a trigger in the writer's own transaction: visible to
-- the sealer exactly when the record is, and small whatever the size of the log.
CREATE TABLE audit_unsealed (
    record_id bigint PRIMARY KEY
);

CREATE FUNCTION audit_log_queue_seal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit_unsealed (record_id) VALUES (NEW.id);
    RETURN NULL;
END;
$$;
CREATE TRIGGER audit_log_to_seal AFTER INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_queue_seal();

-- The content of a record as the chain hashes it: a JSON array of every column, times in UTC with
-- microseconds, as Postgres' jsonb prints it. An auditor can recompute it with this one query.
CREATE FUNCTION audit_content_hash(a audit_log) RETURNS bytea LANGUAGE sql STABLE AS $$
    SELECT sha256(convert_to(jsonb_build_array(
        a.id,
        to_char(a.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        a.actor, a.surface, a.action, a.subject, to_jsonb(a.stripe_ids), a.details, a.cause
    )::text, 'UTF8'))
$$;

-- Records written before this version are sealed by the first sealer, oldest first.
INSERT INTO audit_unsealed (record_id) SELECT id FROM audit_log;

-- The monthly export reads a month of refunds and of audit records by time.
CREATE INDEX refunds_stripe_created ON refunds (stripe_created);
CREATE INDEX audit_log_at ON audit_log (at, id);
CREATE INDEX disputes_stripe_created ON disputes (stripe_created);
