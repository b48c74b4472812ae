"""The `refund-desk demo` session: the real app against local Slack and Stripe stand-ins."""
