-- The worker keeps pace: events claimed in batches, urgent ones first; Slack messages first by
-- priority across channels, each posted with a key Slack keeps, so an uncertain post is looked up
-- instead of repeated; old processed events and delivered messages pruned.

-- 0 urgent, 1 routine (domain/priority.py decides when an event is stored).
ALTER TABLE stripe_events ADD COLUMN priority smallint NOT NULL DEFAULT 1 CHECK (priority IN (0, 1));
-- Events already waiting (or dead-lettered, which a replay queues again) get the rule as it stands
-- in domain/priority.py; processed ones never need it (tests/store/test_worker_schema.py compares).
UPDATE stripe_events SET priority = 0
WHERE status IN ('pending', 'failed', 'dead')
  AND (type IN ('charge.refund.updated', 'charge.refunded', 'payout.failed')
       OR type LIKE 'charge.dispute.%' OR type LIKE 'radar.early\_fraud\_warning.%'
       OR type LIKE 'refund.%' OR type LIKE 'review.%' OR type LIKE 'account.%' OR type LIKE 'capability.%');
-- The worker takes the oldest due event of a priority first.
DROP INDEX stripe_events_due;
CREATE INDEX stripe_events_due ON stripe_events (priority, stripe_created, received_at)
    WHERE status IN ('pending', 'failed');

-- The inbox backlog has an incident of its own (one alert, one recovery).
ALTER TABLE alert_incidents DROP CONSTRAINT alert_incidents_kind_check;
ALTER TABLE alert_incidents ADD CONSTRAINT alert_incidents_kind_check
    CHECK (kind IN ('payment_failures', 'webhook_failures', 'stripe_key', 'event_backlog'));

-- 0 urgent (alerts, approvals, reminders), 1 routine (the refunds feed): a channel's head message of
-- higher priority goes first; within a channel, order is kept whatever the priority.
ALTER TABLE slack_outbox ADD COLUMN priority smallint NOT NULL DEFAULT 0 CHECK (priority IN (0, 1));
-- Sent in each chat.postMessage's metadata: random, so two installations posting to one channel never
-- mistake each other's messages. Messages already sent never need one.
ALTER TABLE slack_outbox ADD COLUMN delivery_key uuid;
ALTER TABLE slack_outbox ALTER COLUMN delivery_key SET DEFAULT gen_random_uuid();
UPDATE slack_outbox SET delivery_key = gen_random_uuid() WHERE status = 'queued';
-- Retention removes delivered messages by age.
CREATE INDEX slack_outbox_sent ON slack_outbox (sent_at) WHERE status = 'sent';

-- A chat.postMessage whose outcome is unknown: written (and committed) before each post, removed
-- with the outcome. Found at the next attempt (the post timed out, or the worker died while Slack
-- had it), it makes the worker look for the message in the channel by its delivery_key first.
CREATE TABLE slack_unsure (
    outbox_id bigint PRIMARY KEY REFERENCES slack_outbox (id) ON DELETE CASCADE,
    first_at  timestamptz NOT NULL,
    last_at   timestamptz NOT NULL
);
