"""The Slack stand-in's parts for history and the Home tab: chat.getPermalink, views.publish, and the
Events API and Home-tab payloads the sender makes, against Slack's real ones."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from support import fixture_json

from standins.slack_api import SlackStandIn
from standins.slack_sender import app_home_opened, event_callback, home_block_actions


def _client(slack: SlackStandIn) -> WebClient:
    return WebClient(token="xoxb-standin", base_url=slack.api_url)


def test_get_permalink_of_a_posted_message(slack: SlackStandIn) -> None:
    client = _client(slack)
    ts = client.chat_postMessage(channel="C0APPROVALS", text="Refund request #1")["ts"]
    answer = client.chat_getPermalink(channel="C0APPROVALS", message_ts=ts)
    assert answer["channel"] == "C0APPROVALS"
    assert answer["permalink"] == f"https://standin.slack.com/archives/C0APPROVALS/p{ts.replace('.', '')}"
    for channel, ts_, error in (("C0APPROVALS", "1.000001", "message_not_found"), ("", ts, "channel_not_found")):
        try:
            client.chat_getPermalink(channel=channel, message_ts=ts_)
        except SlackApiError as exc:
            assert exc.response["error"] == error
        else:
            raise AssertionError(f"{error} expected")


def test_views_publish_keeps_each_persons_home_like_slack_answers(slack: SlackStandIn) -> None:
    client = _client(slack)
    view = {"type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}]}
    first = client.views_publish(user_id="U0AGENT001", view=view)
    again = client.views_publish(user_id="U0AGENT001", view=view)
    real = fixture_json("slack/web_api__views.publish__success__slack_docs_example.json")
    # The stand-in builds every view the same way, so a home also carries modal fields Slack leaves out.
    assert set(real["view"]) <= set(first.data["view"])
    assert first["view"]["id"] == again["view"]["id"] and first["view"]["type"] == "home"
    assert slack.homes["U0AGENT001"]["blocks"] == view["blocks"]


def test_the_senders_payloads_have_the_shape_of_slacks() -> None:
    real_event = fixture_json("slack/event__app_home_opened__real_payload__java_sdk_test.json")
    ours = event_callback(app_home_opened("U0AGENT001"))
    assert set(ours) == set(real_event)
    assert set(ours["event"]) <= set(real_event["event"]) | {"event_ts"}
    real_click = fixture_json("slack/block_actions__app_home_view__real_payload__java_sdk_test.json")
    click = home_block_actions("approve_request", "7", user="U0AGENT001")
    assert set(click) == set(real_click)
    assert set(click["view"]) == set(real_click["view"]) and click["container"]["type"] == "view"
    assert set(click["actions"][0]) == set(real_click["actions"][0]) - {"style"}  # a button without a style
