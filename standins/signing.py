"""Sign requests exactly as Slack and Stripe do, for tests, the demo and the benchmarks."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import quote, urlencode


def slack_headers(body: str, signing_secret: str, *, timestamp: int | None = None) -> dict[str, str]:
    """Headers of a request Slack signed (v0 scheme, https://api.slack.com/authentication/verifying-requests-from-slack)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    base = f"v0:{ts}:{body}".encode()
    signature = "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature,
        "Content-Type": "application/x-www-form-urlencoded",
    }


def slash_command_body(
    text: str,
    *,
    response_url: str,
    user_id: str = "U0SUPPORT1",
    channel_id: str = "C0SUPPORT1",
    command: str = "/refunds",
    trigger_id: str = "13345224609.738474920.8088930838d88f008e0",
) -> str:
    """A slash-command form body shaped like Slack's (see tests/fixtures/slack/slash_command__*.form)."""
    fields = {
        "token": "gIkuvaNzQIHg97ATvDxqgjtO",
        "team_id": "T0001",
        "team_domain": "example",
        "enterprise_id": "E0001",
        "enterprise_name": "Globular Construct Inc",
        "channel_id": channel_id,
        "channel_name": "support",
        "user_id": user_id,
        "user_name": "support.agent",
        "command": command,
        "text": text,
        "api_app_id": "A123456",
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id,
    }
    return urlencode(fields)


def interaction_body(payload: dict[str, Any]) -> str:
    """A block_actions or view_submission body: one `payload` field of JSON, as Slack sends it."""
    return "payload=" + quote(json.dumps(payload))


def stripe_signature(payload: bytes | str, secret: str, *, timestamp: int | None = None, scheme: str = "v1") -> str:
    """A Stripe-Signature header value (https://docs.stripe.com/webhooks#verify-manually)."""
    body = payload.decode() if isinstance(payload, bytes) else payload
    ts = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{ts}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={ts},{scheme}={mac}"
