"""Naming a missing Stripe permission from Stripe's refusal; the manifest's scopes read without YAML."""

from __future__ import annotations

import pytest
import yaml
from support import ROOT

from domain.permissions import SLACK_SCOPES, manifest_bot_scopes, missing_permission, stripe_name

# Stripe's real wording (stripe-node #2246, st-paywall #36), with the permission swapped.
REFUSAL = (
    "The provided key 'rk_test_*****************************************************************************qs8Kgd' "
    "does not have the required permissions for this endpoint on account 'acct_1PJBLEBBLEfV'. Having the "
    "'{}' permission would allow this request to continue."
)


@pytest.mark.parametrize(
    ("resource", "message", "permission"),
    [
        ("disputes", REFUSAL.format("rak_dispute_read"), "Disputes: Read"),
        ("charges", REFUSAL.format("rak_refund_write"), "Charges and Refunds: Write"),
        ("events", REFUSAL.format("rak_event_read"), "Events: Read"),
        (None, REFUSAL.format("rak_subscription_read"), "Subscription: Read"),  # one we do not use
        ("disputes", "This is a restricted API key, but the required permissions are not available.", "Disputes: Read"),
        (None, "no name at all", "a permission this call needs"),
    ],
)
def test_the_missing_permission_is_named(resource: str | None, message: str, permission: str) -> None:
    assert missing_permission(resource, message) == permission


def test_stripes_own_name_is_kept() -> None:
    assert stripe_name(REFUSAL.format("rak_dispute_read")) == "rak_dispute_read"
    assert stripe_name("nothing here") is None


def test_the_manifests_scopes_read_as_yaml_reads_them_and_cover_what_the_desk_says_it_needs() -> None:
    text = (ROOT / "manifest.yml").read_text()
    scopes = manifest_bot_scopes(text)
    assert list(scopes) == yaml.safe_load(text)["oauth_config"]["scopes"]["bot"]
    assert set(SLACK_SCOPES) <= set(scopes)
