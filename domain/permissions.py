"""What the desk may do in Stripe and Slack, pure: each Stripe permission it uses (and a harmless read
that proves it), naming a missing one from Stripe's refusal, and the Slack scopes of the manifest."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StripePermission:
    """A restricted-key permission the desk uses, as the Dashboard names it."""

    resource: str  # our name for the resource, also the probe's name
    label: str  # the Dashboard's name: 'Disputes'
    access: str  # 'Read' or 'Write'
    used_for: str
    optional: bool = False  # the desk works without it, with less

    @property
    def title(self) -> str:
        """'Disputes: Read'."""
        return f"{self.label}: {self.access}"


# Write permissions imply read (Stripe's rule), so Charges and Refunds: Write is checked by a read.
STRIPE_PERMISSIONS = (
    StripePermission("payment_intents", "PaymentIntents", "Read", "lookups of pi_ ids"),
    StripePermission("charges", "Charges and Refunds", "Write", "lookups of ch_ and re_ ids, and making refunds"),
    StripePermission("disputes", "Disputes", "Read", "disputes in lookups"),
    StripePermission("events", "Events", "Read", "`refund-desk events backfill` and the delivery check"),
    StripePermission(
        "accounts", "Connect: Accounts", "Read", "lookups on connected accounts (Connect only)", optional=True
    ),
    StripePermission("balance_transactions", "Balance", "Read", "reconciliation", optional=True),
    StripePermission("payouts", "Payouts", "Read", "reconciliation", optional=True),
)
BY_RESOURCE = {p.resource: p for p in STRIPE_PERMISSIONS}

# Stripe's own names (in its 403 message: "Having the 'rak_dispute_read' permission would allow this
# request to continue.") mapped to our resources.
_RAK = re.compile(r"'(rak_[a-z_]+)'")
_RAK_RESOURCE = {
    "payment_intent": "payment_intents",
    "charge": "charges",
    "refund": "charges",
    "dispute": "disputes",
    "event": "events",
    "account": "accounts",
    "connected_account": "accounts",
    "balance_transaction_source": "balance_transactions",
    "balance": "balance_transactions",
    "payout": "payouts",
}


def stripe_name(message: str | None) -> str | None:
    """The permission Stripe names in a 403 message (`rak_dispute_read`), if it names one."""
    found = _RAK.search(message or "")
    return found.group(1) if found else None


def missing_permission(resource: str | None, message: str | None) -> str:
    """The Dashboard name of the permission a refusal means: 'Disputes: Read'."""
    name = stripe_name(message)
    if name:
        body = name.removeprefix("rak_")
        access = "Write" if body.endswith("_write") else "Read"
        known = BY_RESOURCE.get(_RAK_RESOURCE.get(body.rsplit("_", 1)[0], ""))
        if known:
            return f"{known.label}: {access}"
        return f"{body.rsplit('_', 1)[0].replace('_', ' ').title()}: {access}"
    known = BY_RESOURCE.get(resource or "")
    return f"{known.label}: Read" if known else "a permission this call needs"


# The bot scopes and why, when manifest.yml is not at hand (a test keeps the two the same).
SLACK_SCOPES = {
    "commands": "the /refunds command",
    "chat:write": "posting to the configured channels",
    "usergroups:read": "user groups in REQUESTERS, APPROVERS, ADMINS",
    "channels:history": "reading back a post that timed out before posting it again",
    "groups:history": "the same in private channels",
    "channels:read": "`refund-desk doctor`: whether the bot is in each configured public channel",
    "groups:read": "`refund-desk doctor`: the same for private channels",
    "files:write": "the monthly export, sent as a file (by DM, and to FINANCE_CHANNEL)",
    "users:read": "people's names beside their ids in the export",
}


def manifest_bot_scopes(text: str) -> tuple[str, ...]:
    """The `oauth_config.scopes.bot` list of a Slack app manifest in YAML (block style, as ours is)."""
    scopes: list[str] = []
    path: list[tuple[int, str]] = []
    in_bot = False
    bot_indent = 0
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        item = line.strip()
        if in_bot:
            if indent > bot_indent and item.startswith("- "):
                scopes.append(item[2:].strip().strip("'\""))
                continue
            if indent <= bot_indent:
                in_bot = False
        if item.endswith(":") and not item.startswith("- "):
            while path and path[-1][0] >= indent:
                path.pop()
            path.append((indent, item[:-1]))
            if [name for _, name in path][-3:] == ["oauth_config", "scopes", "bot"]:
                in_bot, bot_indent = True, indent
    return tuple(scopes)


@dataclass(frozen=True, slots=True)
class Check:
    """One finding of `refund-desk doctor`: what was checked, whether it holds, and how to fix it."""

    area: str  # 'Slack', 'Stripe'
    name: str
    ok: bool
    detail: str = ""
    fix: str | None = None
    warning: bool = False  # not holding, but the desk works without it

    @property
    def failed(self) -> bool:
        """Whether this finding makes doctor exit 1."""
        return not self.ok and not self.warning
