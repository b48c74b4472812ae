"""What of a Stripe object we never keep: fields that identify a card beyond brand and last four."""

from __future__ import annotations

import json
from typing import Any

# Stripe never sends the card number or CVC; these are what is left that identifies a card.
CARD_FIELDS = frozenset({"fingerprint", "exp_month", "exp_year", "iin", "network_token"})
_MARKERS = tuple(f'"{name}"' for name in CARD_FIELDS)


def _scrub(node: Any) -> bool:
    changed = False
    if isinstance(node, dict):
        for name in CARD_FIELDS & node.keys():
            del node[name]
            changed = True
        for value in node.values():
            changed |= _scrub(value)
    elif isinstance(node, list):
        for value in node:
            changed |= _scrub(value)
    return changed


def without_card_data(event: dict[str, Any], payload: str) -> str:
    """The event's JSON to store: as received, or re-serialized without card-identifying fields.

    Most events carry none, and a substring check keeps them off the slower path.
    """
    if not any(marker in payload for marker in _MARKERS):
        return payload
    return json.dumps(event, separators=(",", ":")) if _scrub(event) else payload
