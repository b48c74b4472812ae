"""The Slack stand-in's file uploads answer like Slack (keys of the real payloads in tests/fixtures/slack)."""

from __future__ import annotations

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from support import fixture_json

GET_URL = fixture_json("slack/web_api__files.getUploadURLExternal__success__real_log_python_sdk_tutorial.json")
COMPLETE = fixture_json("slack/web_api__files.completeUploadExternal__success__real_log_python_sdk_tutorial.json")


@pytest.fixture
def client(slack) -> WebClient:
    return WebClient(token="xoxb-standin", base_url=slack.api_url)


def test_the_three_steps_answer_in_slacks_shapes_and_share_the_file(client, slack) -> None:
    got = client.files_getUploadURLExternal(filename="report.csv", length=8)
    assert set(got.data) == set(GET_URL)
    done = client.files_upload_v2(
        content=b"a,b\n1,2\n", filename="report.csv", title="Report", channel="C0FINANCE", initial_comment="the month"
    )
    [file] = done["files"]
    assert set(file) == set(COMPLETE["files"][0])
    assert (file["name"], file["title"], file["size"]) == ("report.csv", "Report", 8)
    stored = slack.files[file["id"]]
    assert stored.content == b"a,b\n1,2\n" and stored.shared_to == ["C0FINANCE"]
    [message] = slack.messages["C0FINANCE"]
    assert message["text"] == "the month" and message["files"][0]["id"] == file["id"]


def test_files_shared_with_a_user_land_in_their_dm(client, slack) -> None:
    client.files_upload_v2(content=b"x", filename="x.txt", channels=["U0MANAGER1"])
    assert list(slack.messages) == ["U0MANAGER1"]


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda c: c.files_getUploadURLExternal(filename="x.csv", length=0), "invalid_arguments"),
        (lambda c: c.files_completeUploadExternal(files=[{"id": "F0NOPE", "title": "x"}]), "file_not_found"),
        # Asked for a URL but never uploaded: nothing to complete.
        (
            lambda c: c.files_completeUploadExternal(
                files=[{"id": c.files_getUploadURLExternal(filename="x.csv", length=3)["file_id"]}]
            ),
            "file_not_found",
        ),
    ],
)
def test_slacks_refusals(client, call, error) -> None:
    with pytest.raises(SlackApiError) as refused:
        call(client)
    assert refused.value.response["error"] == error
