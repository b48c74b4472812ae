"""The Stripe side: the webhook route (verify, record, dedupe) and the event handlers by type."""

from __future__ import annotations

# Importing the handler modules registers them.
from handlers import disputes, payments, radar, refunds  # noqa: F401
