"""Use cases that combine the store with Stripe and Slack: what listeners and handlers call."""
