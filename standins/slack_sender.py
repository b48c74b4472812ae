"""Sends the app what Slack sends: signed slash commands, button clicks and modal submissions.

Payload shapes follow the real ones in tests/fixtures/slack (block_actions, view_submission),
and every request_url answer is recorded by the Slack stand-in.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import requests

from standins.signing import interaction_body, slack_headers, slash_command_body
from standins.slack_api import SlackStandIn

_counter = itertools.count(1)


def block_actions(action_id: str, value: str, *, user: str, channel: str, response_url: str) -> dict[str, Any]:
    """A button click as Slack sends it (cf. block_actions__button_in_channel_message__bolt_python_test.json)."""
    n = next(_counter)
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "team_id": "T0001"},
        "api_app_id": "A111",
        "token": "verification_token",
        "container": {
            "type": "message",
            "message_ts": "1678252213.679169",
            "channel_id": channel,
            "is_ephemeral": False,
        },
        "trigger_id": f"{n}.4916855695380.trigger",
        "team": {"id": "T0001", "domain": "example"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": "approvals"},
        "message": {"type": "message", "ts": "1678252213.679169", "bot_id": "B111", "text": "", "blocks": []},
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": f"b{n}",
                "type": "button",
                "value": value,
                "text": {"type": "plain_text", "text": action_id},
                "action_ts": "1678252216.469172",
            }
        ],
    }


def view_submission(callback_id: str, values: dict[str, Any], *, user: str, private_metadata: str) -> dict[str, Any]:
    """A modal submission as Slack sends it (cf. view_submission__bolt_python_test.json)."""
    return {
        "type": "view_submission",
        "team": {"id": "T0001", "domain": "example"},
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": "T0001"},
        "api_app_id": "A111",
        "token": "verification_token",
        "trigger_id": f"{next(_counter)}.trigger",
        "view": {
            "id": "V111",
            "team_id": "T0001",
            "type": "modal",
            "blocks": [],
            "private_metadata": private_metadata,
            "callback_id": callback_id,
            "state": {"values": values},
            "hash": "1596530361.3wRYuk3R",
            "title": {"type": "plain_text", "text": "Refund desk"},
            "previous_view_id": None,
            "root_view_id": "V111",
            "app_id": "A111",
            "bot_id": "B111",
        },
        "response_urls": [],
    }


def event_callback(event: dict[str, Any], *, team_id: str = "T0001", api_app_id: str = "A111") -> dict[str, Any]:
    """An Events API delivery (cf. event__app_home_opened__real_payload__java_sdk_test.json)."""
    n = next(_counter)
    return {
        "token": "verification_token",
        "team_id": team_id,
        "api_app_id": api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": f"Ev{n:08d}",
        "event_time": 1574169232 + n,
    }


def app_home_opened(user: str, *, tab: str = "home") -> dict[str, Any]:
    """The app_home_opened event a person opening the app's Home (or Messages) tab sends."""
    return {
        "type": "app_home_opened",
        "user": user,
        "channel": "D0STANDIN",
        "tab": tab,
        "event_ts": "1574169232.000100",
    }


def home_block_actions(action_id: str, value: str, *, user: str) -> dict[str, Any]:
    """A click on a Home-tab button (cf. block_actions__app_home_view__real_payload__java_sdk_test.json):
    the container is the view, and there is neither a channel nor a response_url."""
    n = next(_counter)
    return {
        "type": "block_actions",
        "team": {"id": "T0001", "domain": "example"},
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": "T0001"},
        "api_app_id": "A111",
        "token": "verification_token",
        "container": {"type": "view", "view_id": "V0HOME0001"},
        "trigger_id": f"{n}.3485157640.trigger",
        "view": {
            "id": "V0HOME0001",
            "team_id": "T0001",
            "type": "home",
            "blocks": [],
            "private_metadata": "",
            "callback_id": "",
            "state": {"values": {}},
            "hash": "1583634748.7562ffd9",
            "title": {"type": "plain_text", "text": "View Title", "emoji": True},
            "clear_on_close": False,
            "notify_on_close": False,
            "close": None,
            "submit": None,
            "previous_view_id": None,
            "root_view_id": "V0HOME0001",
            "app_id": "A111",
            "external_id": "",
            "app_installed_team_id": "T0001",
            "bot_id": "B111",
        },
        "actions": [
            {
                "action_id": action_id,
                "block_id": f"home{n}",
                "text": {"type": "plain_text", "text": action_id, "emoji": True},
                "value": value,
                "type": "button",
                "action_ts": "1583635577.758298",
            }
        ],
    }


class SlackSender:
    """Signs and posts Slack requests to the app's /slack/events."""

    def __init__(self, app_url: str, signing_secret: str, slack: SlackStandIn):
        self.url = f"{app_url}/slack/events"
        self.secret = signing_secret
        self.slack = slack
        self.http = requests.Session()

    def _post(self, body: str, timeout: float = 15) -> requests.Response:
        return self.http.post(self.url, data=body.encode(), headers=slack_headers(body, self.secret), timeout=timeout)

    def slash(self, text: str, *, user: str = "U0SUPPORT1", key: str | None = None) -> tuple[requests.Response, str]:
        """A /refunds command; returns the response and the key of its response_url."""
        key = key or f"cmd{next(_counter)}"
        return self._post(slash_command_body(text, response_url=self.slack.response_url(key), user_id=user)), key

    def click(
        self, action_id: str, value: str, *, user: str, channel: str = "C0APPROVALS", key: str | None = None
    ) -> tuple[requests.Response, str]:
        """A button click; returns the response and the key of its response_url."""
        key = key or f"click{next(_counter)}"
        payload = block_actions(action_id, value, user=user, channel=channel, response_url=self.slack.response_url(key))
        return self._post(interaction_body(payload)), key

    def submit(self, callback_id: str, values: dict[str, Any], *, user: str, private_metadata: str = "") -> dict:
        """A modal submission; returns the JSON answer ({} when the modal closes)."""
        resp = self._post(
            interaction_body(view_submission(callback_id, values, user=user, private_metadata=private_metadata))
        )
        resp.raise_for_status()
        return json.loads(resp.text) if resp.text.strip() else {}

    def event(self, payload: dict[str, Any]) -> requests.Response:
        """An Events API request (event_callback or url_verification), JSON and signed as Slack sends it."""
        body = json.dumps(payload)
        headers = {**slack_headers(body, self.secret), "Content-Type": "application/json"}
        return self.http.post(self.url, data=body.encode(), headers=headers, timeout=15)

    def home_opened(self, user: str, *, tab: str = "home") -> requests.Response:
        """A person opens the app's Home tab."""
        return self.event(event_callback(app_home_opened(user, tab=tab)))

    def home_click(self, action_id: str, value: str, *, user: str) -> requests.Response:
        """A click on a Home-tab button (no response_url: the answer is the tab published again)."""
        return self._post(interaction_body(home_block_actions(action_id, value, user=user)))

    def close(self) -> None:
        """Close the HTTP session."""
        self.http.close()
