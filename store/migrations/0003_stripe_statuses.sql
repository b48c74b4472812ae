-- Statuses that Stripe owns are kept as Stripe sends them: a status Stripe adds tomorrow
-- (requires_reauthorization, say) is a fact to store and show, not an error that stops the event.
-- The statuses we own (refund_requests, stripe_events, slack_outbox) keep their CHECKs.
ALTER TABLE payments DROP CONSTRAINT payments_status_check;
ALTER TABLE payments DROP CONSTRAINT payments_charge_status_check;
ALTER TABLE refunds DROP CONSTRAINT refunds_status_check;
ALTER TABLE disputes DROP CONSTRAINT disputes_status_check;

-- Errors recorded before this version kept psycopg's whole text, whose DETAIL and CONTEXT lines
-- quote the refused row (customer emails included); keep only the first line, the class and message.
UPDATE stripe_events SET last_error = split_part(last_error, E'\n', 1) WHERE last_error LIKE E'%\n%';
