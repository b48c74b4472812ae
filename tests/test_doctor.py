"""`refund-desk doctor`: the Slack token's scopes and channels, each Stripe permission; exit 1 when one is missing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import yaml
from click.testing import CliRunner
from conftest import STRIPE_KEY
from support import ROOT

from cli import main
from standins.slack_api import SlackStandIn
from standins.stripe_api import StripeStandIn

MANIFEST_SCOPES = yaml.safe_load((ROOT / "manifest.yml").read_text())["oauth_config"]["scopes"]["bot"]
CHANNELS = ("C0APPROVALS", "C0ALERTS", "C0DISPUTES")


@pytest.fixture
def workspace() -> Iterator[SlackStandIn]:
    with SlackStandIn(channels=CHANNELS, scopes=MANIFEST_SCOPES) as standin:
        yield standin


def _doctor(slack: SlackStandIn, stripe_api: StripeStandIn, **env: str):
    base = {
        "SLACK_BOT_TOKEN": "xoxb-standin",
        "SLACK_API_URL": slack.api_url,
        "STRIPE_SECRET_KEY": STRIPE_KEY,
        "STRIPE_API_BASE": stripe_api.url,
        "APPROVALS_CHANNEL": "C0APPROVALS",
        "ALERTS_CHANNEL": "C0ALERTS",
        "DISPUTES_CHANNEL": "C0DISPUTES",
        "LOG_LEVEL": "ERROR",
    }
    return CliRunner().invoke(main, ["doctor"], env={**base, **env}, catch_exceptions=False)


def test_all_in_place(workspace: SlackStandIn, stripe_api: StripeStandIn) -> None:
    result = _doctor(workspace, stripe_api)
    assert result.exit_code == 0, result.output
    assert "Everything the desk needs is in place." in result.output
    assert "ok   Disputes: Read" in result.output and "ok   channel C0ALERTS (ALERTS_CHANNEL)" in result.output
    # Nothing was changed: reads only, and no message posted.
    assert {r["method"] for r in stripe_api.requests} == {"GET"}
    assert not [c for c in workspace.calls if c.method.startswith("chat.")]


def test_a_key_without_disputes_read_is_reported_with_the_fix(
    workspace: SlackStandIn, stripe_api: StripeStandIn
) -> None:
    stripe_api.deny("/v1/disputes", "rak_dispute_read")
    result = _doctor(workspace, stripe_api)
    assert result.exit_code == 1
    assert "FAIL Disputes: Read (disputes in lookups): refused (Stripe: rak_dispute_read)" in result.output
    assert "set Disputes: Read" in result.output and "1 problem(s) found." in result.output


def test_optional_permissions_only_warn(workspace: SlackStandIn, stripe_api: StripeStandIn) -> None:
    stripe_api.deny("/v1/accounts", "rak_account_read")
    result = _doctor(workspace, stripe_api)
    assert result.exit_code == 0 and "warn Connect: Accounts: Read" in result.output


def test_missing_scopes_and_channels_the_bot_is_not_in(stripe_api: StripeStandIn) -> None:
    scopes = [s for s in MANIFEST_SCOPES if s != "usergroups:read"]
    with SlackStandIn(channels=("C0APPROVALS",), scopes=scopes) as slack:
        result = _doctor(slack, stripe_api)
    assert result.exit_code == 1
    assert "FAIL scope usergroups:read" in result.output
    assert "FAIL channel C0ALERTS (ALERTS_CHANNEL): Slack answered channel_not_found" in result.output
    assert "/invite @Refund Desk" in result.output


def test_a_rejected_token_and_key(stripe_api: StripeStandIn) -> None:
    with SlackStandIn(bot_token="xoxb-another") as slack:
        result = _doctor(slack, stripe_api, STRIPE_SECRET_KEY="sk_test_wrong")
    assert result.exit_code == 1
    assert "FAIL bot token (auth.test): Slack answered invalid_auth" in result.output
    assert "FAIL secret key: Stripe rejected STRIPE_SECRET_KEY" in result.output
