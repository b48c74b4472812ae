"""Stripe Connect, pure: connected accounts from Stripe JSON, which snapshot wins, and what is wrong.

An account's problems are the facts on-call must hear: charges or payouts disabled, a capability
inactive, the account disconnected from the platform. Each is alerted once when it appears and
noted once when it clears.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

ACCOUNT_ID = re.compile(r"\bacct_[A-Za-z0-9]{6,250}\b")
# Capability statuses that stop what the capability does (Stripe: active, inactive, pending, unrequested;
# `disabled` on older API versions).
CAPABILITY_DOWN = frozenset({"inactive", "disabled"})


@dataclass(frozen=True, slots=True)
class Capability:
    """One capability of an account (card_payments, transfers, …) as last seen."""

    status: str
    reason: str | None = None
    due: tuple[str, ...] = ()
    at: int = 0  # the Stripe time of the snapshot it comes from


@dataclass(frozen=True, slots=True)
class Account:
    """A connected account as last seen from Stripe."""

    id: str
    name: str | None = None
    charges_enabled: bool | None = None
    payouts_enabled: bool | None = None
    disabled_reason: str | None = None
    currently_due: tuple[str, ...] = ()
    past_due: tuple[str, ...] = ()
    capabilities: Mapping[str, Capability] = field(default_factory=dict)
    connected: bool = True
    observed_at: datetime | None = None  # when the account fields we hold were true
    connection_at: datetime | None = None  # when `connected` was last decided


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong with an account, with Stripe's reason and what it still requires."""

    key: str  # 'charges_disabled', 'payouts_disabled', 'disconnected', 'capability:card_payments'
    reason: str | None = None
    requires: tuple[str, ...] = ()


def account_in(text: str) -> str | None:
    """The connected account an id list or a Dashboard link names (`…/acct_123/test/payments/pi_…`)."""
    found = ACCOUNT_ID.search(text)
    return found.group(0) if found else None


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def account_from_stripe(obj: Mapping[str, Any], *, observed_at: datetime) -> Account:
    """An account record from an `account` object (account.updated, GET /v1/accounts/…)."""
    requirements = obj.get("requirements") if isinstance(obj.get("requirements"), Mapping) else {}
    profile = obj.get("business_profile") if isinstance(obj.get("business_profile"), Mapping) else {}
    settings = obj.get("settings") if isinstance(obj.get("settings"), Mapping) else {}
    dashboard = settings.get("dashboard") if isinstance(settings.get("dashboard"), Mapping) else {}
    name = profile.get("name") or dashboard.get("display_name") or obj.get("email")
    at = int(observed_at.timestamp())
    caps = obj.get("capabilities") if isinstance(obj.get("capabilities"), Mapping) else {}
    return Account(
        id=str(obj["id"]),
        name=name if isinstance(name, str) else None,
        charges_enabled=obj.get("charges_enabled") if isinstance(obj.get("charges_enabled"), bool) else None,
        payouts_enabled=obj.get("payouts_enabled") if isinstance(obj.get("payouts_enabled"), bool) else None,
        disabled_reason=_text(requirements.get("disabled_reason")),
        currently_due=_strings(requirements.get("currently_due")),
        past_due=_strings(requirements.get("past_due")),
        # The account object lists only each capability's status; capability.updated adds the why.
        capabilities={k: Capability(v, at=at) for k, v in caps.items() if isinstance(v, str)},
        observed_at=observed_at,
    )


def capability_from_stripe(obj: Mapping[str, Any], *, observed_at: datetime) -> tuple[str | None, str, Capability]:
    """(account, capability name, capability) from a `capability` object (capability.updated)."""
    requirements = obj.get("requirements") if isinstance(obj.get("requirements"), Mapping) else {}
    due = _strings(requirements.get("past_due")) + tuple(
        d for d in _strings(requirements.get("currently_due")) if d not in _strings(requirements.get("past_due"))
    )
    reason = requirements.get("disabled_reason")
    account = obj.get("account")
    return (
        account if isinstance(account, str) else None,
        str(obj.get("id") or "unknown"),
        Capability(
            str(obj.get("status") or "unknown"),
            reason if isinstance(reason, str) else None,
            due,
            int(observed_at.timestamp()),
        ),
    )


def merge_account(current: Account | None, incoming: Account) -> Account:
    """The account after an account snapshot: newer fields win, capabilities merge one by one."""
    if current is None:
        return incoming
    caps = dict(current.capabilities)
    for name, cap in incoming.capabilities.items():
        held = caps.get(name)
        if held is None or cap.at >= held.at:
            # The account object says only the status; keep the why when the status did not move.
            keep = held is not None and held.status == cap.status
            caps[name] = replace(cap, reason=held.reason, due=held.due) if keep and held else cap
    dated = current.observed_at is not None and incoming.observed_at is not None
    if dated and incoming.observed_at < current.observed_at:  # type: ignore[operator]
        return replace(current, capabilities=caps)  # an older snapshot: only newer capability news count
    return replace(incoming, capabilities=caps, connected=current.connected, connection_at=current.connection_at)


def merge_capability(current: Account, name: str, cap: Capability) -> Account:
    """The account after a capability snapshot (an older one changes nothing)."""
    held = current.capabilities.get(name)
    if held is not None and cap.at < held.at:
        return current
    return replace(current, capabilities={**current.capabilities, name: cap})


def merge_connection(current: Account, *, connected: bool, at: datetime) -> Account:
    """The account after the platform's application was authorized or deauthorized (the newer news wins)."""
    if current.connection_at is not None and at < current.connection_at:
        return current
    return replace(current, connected=connected, connection_at=at)


def problems(account: Account) -> dict[str, Problem]:
    """What is wrong with the account now, by problem key."""
    if not account.connected:
        return {"disconnected": Problem("disconnected", "the platform's application was deauthorized")}
    requires = account.past_due + tuple(d for d in account.currently_due if d not in account.past_due)
    found: dict[str, Problem] = {}
    if account.charges_enabled is False:
        found["charges_disabled"] = Problem("charges_disabled", account.disabled_reason, requires)
    if account.payouts_enabled is False:
        found["payouts_disabled"] = Problem("payouts_disabled", account.disabled_reason, requires)
    for name, cap in sorted(account.capabilities.items()):
        if cap.status in CAPABILITY_DOWN:
            found[f"capability:{name}"] = Problem(f"capability:{name}", cap.reason, cap.due)
    return found


def changes(open_alerts: Mapping[str, str], account: Account) -> tuple[list[Problem], list[str]]:
    """(problems to alert now, open problems that cleared).

    While an account is disconnected its other alerts stay as they are: they have not cleared,
    the desk can only no longer see them.
    """
    now = problems(account)
    opened = [p for key, p in now.items() if key not in open_alerts]
    if not account.connected:
        return opened, []
    cleared = [key for key in open_alerts if key not in now]
    return opened, cleared
