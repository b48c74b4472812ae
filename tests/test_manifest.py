"""manifest.yml is a valid Slack app manifest that matches what the code registers."""

from __future__ import annotations

import json

import jsonschema
import yaml
from support import FIXTURES, ROOT

from bot.commands import COMMAND


def _manifest() -> dict:
    return yaml.safe_load((ROOT / "manifest.yml").read_text())


def test_manifest_validates_against_slacks_schema() -> None:
    schema = json.loads((FIXTURES / "schemas" / "slack-app-manifest.schema.1.0.0.json").read_text())
    jsonschema.validate(_manifest(), schema)


def test_manifest_declares_the_command_interactivity_and_only_the_scopes_we_use() -> None:
    m = _manifest()
    commands = {c["command"]: c for c in m["features"]["slash_commands"]}
    assert set(commands) == {COMMAND}
    assert commands[COMMAND]["usage_hint"] and commands[COMMAND]["url"].endswith("/slack/events")
    assert m["settings"]["interactivity"]["is_enabled"] is True
    assert m["settings"]["interactivity"]["request_url"].endswith("/slack/events")
    assert set(m["oauth_config"]["scopes"]["bot"]) == {
        "commands",
        "chat:write",
        "usergroups:read",
        "channels:history",  # an uncertain post is looked up before it is posted again
        "groups:history",
        "channels:read",  # refund-desk doctor: is the bot in each configured channel?
        "groups:read",
        "files:write",  # the monthly export, by DM and to FINANCE_CHANNEL
        "users:read",  # names beside ids in the export
    }
