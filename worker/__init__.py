"""The worker process: applies stored Stripe events and delivers the Slack queue."""
