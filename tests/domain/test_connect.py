"""Connect accounts from real Stripe JSON, which snapshot wins, and what on-call hears, as tables."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from support import fixture_json

from domain.connect import (
    Account,
    Capability,
    account_from_stripe,
    account_in,
    capability_from_stripe,
    changes,
    merge_account,
    merge_capability,
    merge_connection,
    problems,
)

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DISABLED = fixture_json("stripe/event_account.updated__djstripe_connect_standard_charges_disabled.json")
HEALTHY = fixture_json("stripe/event_account.updated__djstripe_connect_custom.json")
CAPABILITY = fixture_json("stripe/object_capability__openapi-fixtures3.json")


def test_an_account_with_charges_disabled_says_why_and_what_stripe_requires() -> None:
    account = account_from_stripe(DISABLED["data"]["object"], observed_at=T0)
    found = problems(account)
    assert set(found) == {"charges_disabled", "payouts_disabled"}
    charges = found["charges_disabled"]
    assert charges.reason == "requirements.past_due"
    # Past due first, then the rest of what is currently due, once each.
    assert charges.requires[:3] == ("external_account", "tos_acceptance.date", "tos_acceptance.ip")
    assert len(charges.requires) == len(set(charges.requires)) == 7


def test_a_healthy_account_has_no_problem_and_keeps_its_name() -> None:
    account = account_from_stripe(HEALTHY["data"]["object"], observed_at=T0)
    assert problems(account) == {}
    assert account.name == "Express Account" and account.capabilities["transfers"].status == "active"


def test_an_inactive_capability_is_a_problem_with_its_requirements() -> None:
    owner, name, cap = capability_from_stripe(
        {**CAPABILITY, "requirements": {**CAPABILITY["requirements"], "past_due": ["individual.id_number"]}},
        observed_at=T0,
    )
    assert (owner, name, cap.status, cap.due) == (
        "acct_1PgafTB7WZ01zgkW",
        "card_payments",
        "inactive",
        ("individual.id_number",),
    )
    account = merge_capability(Account(owner), name, cap)
    assert problems(account)["capability:card_payments"].requires == ("individual.id_number",)


@pytest.mark.parametrize(
    ("open_alerts", "state", "opened", "cleared"),
    [
        ({}, {"charges_enabled": False}, ["charges_disabled"], []),
        ({"charges_disabled": "k"}, {"charges_enabled": False}, [], []),  # told once
        ({"charges_disabled": "k"}, {"charges_enabled": True}, [], ["charges_disabled"]),
        ({}, {"connected": False}, ["disconnected"], []),
        # Disconnected: the other alerts have not cleared, the desk can only no longer see them.
        ({"charges_disabled": "k"}, {"connected": False, "charges_enabled": True}, ["disconnected"], []),
        ({"disconnected": "k"}, {"connected": True}, [], ["disconnected"]),
        ({}, {"charges_enabled": None}, [], []),  # unknown is not disabled
    ],
)
def test_what_is_told(open_alerts: dict, state: dict, opened: list[str], cleared: list[str]) -> None:
    got_opened, got_cleared = changes(open_alerts, replace(Account("acct_1"), **state))
    assert [p.key for p in got_opened] == opened and got_cleared == cleared


def test_an_older_snapshot_never_overwrites_a_newer_one() -> None:
    newer = account_from_stripe(DISABLED["data"]["object"], observed_at=T0)
    older = replace(newer, charges_enabled=True, payouts_enabled=True, observed_at=T0 - timedelta(minutes=1))
    assert merge_account(newer, older).charges_enabled is False
    assert merge_account(older, newer).charges_enabled is False
    # The connection is decided by its own events, whatever the account snapshots say.
    gone = merge_connection(newer, connected=False, at=T0 + timedelta(seconds=5))
    assert merge_account(gone, replace(newer, observed_at=T0 + timedelta(minutes=1))).connected is False
    assert merge_connection(gone, connected=True, at=T0).connected is False  # an older authorization


def test_an_account_snapshot_keeps_the_why_of_a_capability_whose_status_did_not_move() -> None:
    held = Account(
        "acct_1", capabilities={"card_payments": Capability("inactive", "requirements.past_due", ("x",), 10)}
    )
    incoming = Account("acct_1", capabilities={"card_payments": Capability("inactive", at=20)}, observed_at=T0)
    assert merge_account(held, incoming).capabilities["card_payments"].due == ("x",)


@pytest.mark.parametrize(
    ("text", "account"),
    [
        (
            "https://dashboard.stripe.com/acct_1Fg9jUA3kq9o1aTc/test/payments/pi_3MtwBwLkdIwHu7ix28a3tqPa",
            "acct_1Fg9jUA3kq9o1aTc",
        ),
        ("https://dashboard.stripe.com/connect/accounts/acct_1Fg9jUA3kq9o1aTc/payments/py_1", "acct_1Fg9jUA3kq9o1aTc"),
        ("https://dashboard.stripe.com/test/payments/pi_3MtwBwLkdIwHu7ix28a3tqPa", None),
    ],
)
def test_the_account_in_a_dashboard_link(text: str, account: str | None) -> None:
    assert account_in(text) == account
