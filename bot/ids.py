"""Block Kit action ids: constants shared by rendering and listeners."""

from __future__ import annotations

OPEN_IN_STRIPE = "open_in_stripe"
