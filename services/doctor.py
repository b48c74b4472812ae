"""`refund-desk doctor`: what the Slack token and the Stripe key may do, checked without changing anything.

Slack: auth.test, the scopes the token grants (Slack's `x-oauth-scopes` header) against those the
manifest asks for, and the bot's membership of every configured channel (conversations.info).
Stripe: one harmless read per resource the desk uses (a list of one), each refusal named as the
restricted-key permission to grant.
"""

from __future__ import annotations

from collections.abc import Iterable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from domain.errors import DeskError, NotFound, StripePermissionMissing, StripeRejectedKey, StripeUnavailable
from domain.permissions import STRIPE_PERMISSIONS, Check
from services.stripe_gateway import StripeError, StripeGateway
from settings import Settings

SLACK = "Slack"
STRIPE = "Stripe"


def configured_channels(settings: Settings) -> dict[str, str]:
    """Every channel the desk posts to, by the setting that names it."""
    named = {
        "APPROVALS_CHANNEL": settings.approvals_channel,
        "REFUNDS_FEED_CHANNEL": settings.refunds_feed_channel,
        "DISPUTES_CHANNEL": settings.disputes_channel,
        "ALERTS_CHANNEL": settings.alerts_channel,
        "FINANCE_CHANNEL": getattr(settings, "finance_channel", None),
    }
    channels = {channel: name for name, channel in named.items() if channel}
    for (account, kind), channel in sorted(settings.alert_routes.items()):
        channels.setdefault(channel, f"ALERT_ROUTES ({account}/{kind})")
    return channels


def check_slack(client: WebClient, settings: Settings, wanted: Iterable[str]) -> list[Check]:
    """The token, its scopes, and the bot's channels."""
    try:
        response = client.auth_test()
    except SlackApiError as exc:
        error = exc.response.get("error") if isinstance(exc.response.data, dict) else exc.response.status_code
        return [
            Check(
                SLACK,
                "bot token (auth.test)",
                False,
                f"Slack answered {error}",
                "copy the Bot User OAuth Token (xoxb-…) from the app's OAuth & Permissions page into SLACK_BOT_TOKEN",
            )
        ]
    except OSError as exc:
        return [Check(SLACK, "bot token (auth.test)", False, f"Slack unreachable ({type(exc).__name__})")]
    checks = [Check(SLACK, "bot token (auth.test)", True, f"bot {response.get('user_id')} in {response.get('team')}")]
    header = response.headers.get("x-oauth-scopes") or response.headers.get("X-OAuth-Scopes") or ""
    granted = {s.strip() for s in header.split(",") if s.strip()}
    for scope in wanted:
        if scope in granted:
            checks.append(Check(SLACK, f"scope {scope}", True))
        else:
            checks.append(
                Check(
                    SLACK,
                    f"scope {scope}",
                    False,
                    "the manifest asks for it; the token does not grant it",
                    "add it under OAuth & Permissions (or paste manifest.yml again) and reinstall the app",
                )
            )
    for channel, name in configured_channels(settings).items():
        checks.append(_channel_check(client, channel, name))
    return checks


def _channel_check(client: WebClient, channel: str, name: str) -> Check:
    label = f"channel {channel} ({name})"
    invite = f"in Slack, open the channel and type /invite @Refund Desk (then check {name} is its ID)"
    try:
        info = client.conversations_info(channel=channel)
    except SlackApiError as exc:
        error = exc.response.get("error") if isinstance(exc.response.data, dict) else str(exc.response.status_code)
        if error == "missing_scope":
            return Check(SLACK, label, False, "cannot check: the token lacks channels:read / groups:read", warning=True)
        return Check(
            SLACK, label, False, f"Slack answered {error} (a wrong ID, or a private channel without the bot)", invite
        )
    except OSError as exc:
        return Check(SLACK, label, False, f"Slack unreachable ({type(exc).__name__})")
    if not (info.get("channel") or {}).get("is_member", False):
        return Check(SLACK, label, False, "the bot is not a member", invite)
    return Check(SLACK, label, True, "the bot is a member")


def check_stripe(gateway: StripeGateway) -> list[Check]:
    """One harmless read per permission the desk uses."""
    checks = []
    for permission in STRIPE_PERMISSIONS:
        name = f"{permission.title} ({permission.used_for})"
        grant = (
            f"in the Dashboard (Developers → API keys → the restricted key → Edit) set {permission.title}, "
            "or use a key that has it"
        )
        try:
            gateway.probe(permission.resource)
        except StripePermissionMissing as exc:
            said = f" (Stripe: {exc.stripe_name})" if exc.stripe_name else ""
            checks.append(Check(STRIPE, name, False, f"refused{said}", grant, warning=permission.optional))
            continue
        except StripeRejectedKey:
            checks.append(
                Check(
                    STRIPE,
                    "secret key",
                    False,
                    "Stripe rejected STRIPE_SECRET_KEY",
                    "set STRIPE_SECRET_KEY to a live or test secret or restricted key (sk_… or rk_…)",
                )
            )
            return checks
        except StripeUnavailable as exc:
            checks.append(Check(STRIPE, name, False, f"could not check: {exc.message}"))
            continue
        except (NotFound, StripeError) as exc:
            checks.append(Check(STRIPE, name, False, f"could not check: {exc.message}", warning=True))
            continue
        except DeskError as exc:
            checks.append(Check(STRIPE, name, False, f"could not check: {exc.message}"))
            continue
        detail = "read checked; write is proven only by a refund" if permission.access == "Write" else ""
        checks.append(Check(STRIPE, name, True, detail))
    return checks
