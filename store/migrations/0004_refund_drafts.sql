-- A refund that would run at once (an approver within the threshold) waits here until the person
-- confirms the exact amount; confirming takes the row (DELETE … RETURNING), so a double click files once.
CREATE TABLE refund_drafts (
    id            uuid PRIMARY KEY,
    payment_id    text NOT NULL,
    amount        bigint NOT NULL CHECK (amount > 0),
    currency      text NOT NULL,
    reason        text NOT NULL,
    note          text,
    requested_by  text NOT NULL,
    requested_via text NOT NULL,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL
);
CREATE INDEX refund_drafts_expires_at ON refund_drafts (expires_at);
