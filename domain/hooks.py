"""Outgoing hooks, pure: which endpoint wants which event type, and the Standard Webhooks message.

OUTGOING_WEBHOOKS reads `URL|type,type;URL|type`; a type may end in `.*` (every type under it).
Each message has a stable id derived from the fact it tells (a refund succeeding, an incident
opening), so a replayed Stripe event or a second worker never makes a second message, and a
receiver dedupes retries by that id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

EVENT_TYPES = (
    "incident.opened",
    "incident.escalated",
    "incident.resolved",
    "refund.succeeded",
    "refund.failed",
    "payment.fully_refunded",
    "dispute.opened",
    "dispute.closed",
)
# The Standard Webhooks specification: a secret of 24 to 64 bytes, base64 after `whsec_`.
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
SECRET_BYTES = (24, 64)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A receiver and the event types it asked for."""

    url: str
    types: tuple[str, ...]

    def wants(self, event_type: str) -> bool:
        """Whether this endpoint asked for the type (exactly, or by a `prefix.*` pattern)."""
        return any(
            pattern == event_type or (pattern.endswith(".*") and event_type.startswith(pattern[:-1]))
            for pattern in self.types
        )


def _known_pattern(pattern: str) -> bool:
    if pattern.endswith(".*"):
        return any(t.startswith(pattern[:-1]) for t in EVENT_TYPES)
    return pattern in EVENT_TYPES


def parse_endpoints(text: str) -> tuple[Endpoint, ...]:
    """`https://a.example/hook|incident.*,refund.failed;https://b.example|dispute.opened` → endpoints."""
    endpoints: list[Endpoint] = []
    for entry in filter(None, (part.strip() for part in text.split(";"))):
        url, bar, types_text = entry.rpartition("|")
        url = url.strip()
        parts = urlsplit(url) if bar else None
        if not parts or parts.scheme not in {"https", "http"} or not parts.netloc:
            raise ValueError(f"'{_short(entry)}' should look like https://host/path|incident.*,refund.failed")
        types = tuple(t.strip() for t in types_text.split(",") if t.strip())
        unknown = [t for t in types if not _known_pattern(t)]
        if not types or unknown:
            raise ValueError(
                f"{_short(url)}: {', '.join(unknown) or 'no event type'} is not one of {', '.join(EVENT_TYPES)}"
                " (or a prefix like incident.*)"
            )
        endpoints.append(Endpoint(url, types))
    return tuple(endpoints)


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def secret_problem(secret: str) -> str | None:
    """Why a signing secret is not one the Standard Webhooks specification allows, or None."""
    if not secret.startswith(SECRET_PREFIX):
        return f"should start with {SECRET_PREFIX}"
    try:
        raw = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        return f"should be {SECRET_PREFIX} followed by base64"
    low, high = SECRET_BYTES
    if not low <= len(raw) <= high:
        return f"should hold {low} to {high} random bytes (it holds {len(raw)})"
    return None


def message_id(fact: str) -> str:
    """The webhook-id of the message telling `fact` (e.g. 'refund.succeeded:re_123'): stable across retries."""
    return "msg_" + hashlib.sha256(fact.encode()).hexdigest()[:32]


def envelope(event_type: str, data: dict[str, Any], at: datetime) -> dict[str, Any]:
    """The message body the specification recommends: type, timestamp, data."""
    stamp = at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"type": event_type, "timestamp": stamp, "data": data}


def endpoint_label(url: str) -> str:
    """An endpoint as logs and people see it: scheme and host only (a path or query may carry a token)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}"
