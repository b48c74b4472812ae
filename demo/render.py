"""Slack messages as plain terminal text, so the demo shows what a person would see."""

from __future__ import annotations

import re
import textwrap
from typing import Any

_DATE = re.compile(r"<!date\^\d+\^[^|>]*\|([^>]*)>")
_USER = re.compile(r"<@([A-Z0-9]+)>")
_LINK = re.compile(r"<(https?://[^|>]+)\|([^>]+)>")


def mrkdwn(text: str) -> str:
    """Slack mrkdwn to plain text."""
    text = _DATE.sub(r"\1", text)
    text = _USER.sub(r"@\1", text)
    text = _LINK.sub(r"\2 (\1)", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _text(obj: dict[str, Any] | None) -> str:
    return mrkdwn(obj.get("text", "")) if obj else ""


def message(body: dict[str, Any], indent: str = "  │ ") -> str:
    """A message body (text and blocks) as indented lines."""
    lines: list[str] = []
    blocks = body.get("blocks") or []
    if not blocks:
        lines += mrkdwn(body.get("text", "")).splitlines()
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            lines += [_text(block.get("text")).upper(), ""]
        elif kind == "section":
            if block.get("text"):
                lines += _text(block["text"]).splitlines()
            fields = [_text(f).replace("\n", ": ", 1) for f in block.get("fields") or []]
            for left, right in zip(fields[::2], fields[1::2] + [""], strict=False):
                lines.append(f"{left:<38} {right}".rstrip())
        elif kind == "divider":
            lines.append("─" * 40)
        elif kind == "context":
            lines.append(" ".join(_text(e) for e in block.get("elements", [])))
        elif kind == "actions":
            buttons = [
                f"[{_text(e.get('text'))}{' → ' + e['url'] if e.get('url') else ''}]" for e in block.get("elements", [])
            ]
            lines.append("  ".join(buttons))
    wrapped: list[str] = []
    for line in lines:
        wrapped += textwrap.wrap(line, 100, subsequent_indent="    ") or [""]
    return "\n".join(indent + line for line in wrapped)
