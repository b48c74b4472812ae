"""Roles from settings and Slack user groups, cached with expiry, resilient to Slack errors."""

from __future__ import annotations

import pytest
from conftest import replace_settings
from slack_sdk import WebClient

from domain.policy import Roles
from services.roles import RoleDirectory, RolesUnavailable


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def directory(settings, slack):
    clock = Clock()
    configured = replace_settings(settings, approvers=frozenset({"S0APPROVERS"}), usergroup_cache_seconds=300)
    client = WebClient(token="xoxb-standin", base_url=slack.api_url, timeout=2)
    return RoleDirectory(configured, client, clock=clock), clock


def test_group_members_are_cached_until_they_expire(directory, slack) -> None:
    roles, clock = directory
    assert roles.roles("U0MANAGER1") == Roles(requester=True, approver=True)
    assert roles.roles("U0SUPPORT1") == Roles(requester=True, approver=False)
    assert len(slack.calls_to("usergroups.users.list")) == 1
    clock.now = 299
    roles.roles("U0MANAGER2")
    assert len(slack.calls_to("usergroups.users.list")) == 1
    clock.now = 301
    roles.roles("U0MANAGER2")
    assert len(slack.calls_to("usergroups.users.list")) == 2


def test_a_slack_error_falls_back_to_the_cache_or_says_so(directory, slack) -> None:
    roles, clock = directory
    slack.fail_next("usergroups.users.list", 1, kind="server_error")
    with pytest.raises(RolesUnavailable):
        roles.roles("U0MANAGER1")
    assert roles.roles("U0MANAGER1").approver  # Slack answers again
    clock.now = 1000
    slack.fail_next("usergroups.users.list", 1, kind="ratelimited")
    assert roles.roles("U0MANAGER1").approver  # stale, but better than refusing everyone
