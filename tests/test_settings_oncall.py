"""Paging, escalation, outgoing hooks, silence and Connect settings: defaults, and errors naming the variable."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest

from domain.hooks import Endpoint
from settings import PAGERDUTY_EVENTS_DEFAULT, VARIABLES, ConfigError, load_settings

SECRET = "whsec_" + base64.b64encode(b"s" * 32).decode()


def test_defaults() -> None:
    s = load_settings({})
    assert s.pagerduty_routing_key is None and s.pagerduty_events_url == PAGERDUTY_EVENTS_DEFAULT
    assert s.incident_escalate == timedelta(minutes=30) and s.escalation_group is None
    assert s.outgoing_webhooks == () and s.outgoing_webhook_secret is None
    assert s.webhook_silence == timedelta(minutes=30) and s.delivery_check_every == timedelta(minutes=5)
    assert s.connect_lookup_accounts == 25


def test_everything_set() -> None:
    s = load_settings(
        {
            "PAGERDUTY_ROUTING_KEY": "e93facc04764012d7bfb002500d5d1a6",
            "PAGERDUTY_EVENTS_URL": "http://127.0.0.1:9999/v2/enqueue",
            "INCIDENT_ESCALATE_MINUTES": "45",
            "ESCALATION_GROUP": "S0BILLING",
            "OUTGOING_WEBHOOKS": "https://crm.example.com/in|incident.*;https://help.example.com|refund.failed",
            "OUTGOING_WEBHOOK_SECRET": SECRET,
            "WEBHOOK_SILENCE_MINUTES": "20",
        }
    )
    assert s.incident_escalate == timedelta(minutes=45) and s.escalation_group == "S0BILLING"
    assert s.outgoing_webhooks[0] == Endpoint("https://crm.example.com/in", ("incident.*",))
    assert s.webhook_silence == timedelta(minutes=20)


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"PAGERDUTY_ROUTING_KEY": "too-short"}, "PAGERDUTY_ROUTING_KEY should be the 32-character"),
        ({"PAGERDUTY_EVENTS_URL": "events.pagerduty.com"}, "PAGERDUTY_EVENTS_URL should be an http(s) URL"),
        ({"INCIDENT_ESCALATE_MINUTES": "soon"}, "INCIDENT_ESCALATE_MINUTES should be a number"),
        ({"ESCALATION_GROUP": "#billing"}, "ESCALATION_GROUP should be a user-group ID"),
        ({"OUTGOING_WEBHOOKS": "https://a.example|refund.created"}, "OUTGOING_WEBHOOKS: "),
        ({"OUTGOING_WEBHOOKS": "https://a.example|refund.failed"}, "OUTGOING_WEBHOOK_SECRET is not set"),
        ({"OUTGOING_WEBHOOK_SECRET": "whsec_c2hvcnQ="}, "OUTGOING_WEBHOOK_SECRET should hold 24 to 64"),
        ({"WEBHOOK_SILENCE_MINUTES": "0"}, "WEBHOOK_SILENCE_MINUTES should be between"),
    ],
)
def test_a_bad_value_names_its_variable(env: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(env)
    assert problem in str(err.value)


def test_every_new_variable_is_listed_and_in_the_readme() -> None:
    from support import ROOT

    readme = (ROOT / "README.md").read_text()
    for name in (
        "PAGERDUTY_ROUTING_KEY",
        "PAGERDUTY_EVENTS_URL",
        "INCIDENT_ESCALATE_MINUTES",
        "ESCALATION_GROUP",
        "OUTGOING_WEBHOOKS",
        "OUTGOING_WEBHOOK_SECRET",
        "OUTGOING_WEBHOOK_MAX_ATTEMPTS",
        "WEBHOOK_SILENCE_MINUTES",
        "DELIVERY_CHECK_MINUTES",
        "CONNECT_LOOKUP_ACCOUNTS",
    ):
        assert name in VARIABLES and f"`{name}`" in readme, name
