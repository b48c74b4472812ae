"""The Slack stand-in's reading side: conversations.history and conversations.replies, and message metadata.

Shaped like Slack's: history is newest first and holds a channel's top-level messages (and thread
replies broadcast to it); replies are the thread's parent, then its replies oldest first; both
page with `limit` (1..999) and `response_metadata.next_cursor`, bound by `oldest`/`latest`
(exclusive unless `inclusive`), and show a message's `metadata` only with `include_all_metadata`.
Reading a channel needs channels:history (C…) or groups:history (G…); without it Slack answers
missing_scope with the scope needed. chat.postMessage refuses metadata that is not an object with
a string `event_type` and an object `event_payload` (invalid_metadata_format). Mixed into
SlackStandIn; the state is kept under its condition's lock.
"""

from __future__ import annotations

import base64
import binascii
import copy
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

MAX_HISTORY_LIMIT = 999
_SCOPE_FOR = {"C": "channels:history", "G": "groups:history", "D": "im:history"}


def _error(error: str, **more: Any) -> dict[str, Any]:
    return {"ok": False, "error": error, **more}


def _flag(value: Any) -> bool:
    return value in (True, 1, "1", "true", "True")


def _stamp(value: Any) -> Decimal | None:
    """A Slack ts ('1700000000.000100') as an exact number; None when it is not one."""
    try:
        stamp = Decimal(str(value))
    except InvalidOperation:
        return None
    return stamp if stamp.is_finite() else None


def _cursor(ts: str) -> str:
    return base64.b64encode(f"next_ts:{ts}".encode()).decode()


def _from_cursor(cursor: str) -> Decimal | None:
    try:
        text = base64.b64decode(cursor.encode(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return _stamp(text.removeprefix("next_ts:")) if text.startswith("next_ts:") else None


class HistoryMixin:
    """conversations.history, conversations.replies, and the metadata check of chat.postMessage."""

    # Provided by SlackStandIn.
    _messages: dict[str, list[dict[str, Any]]]
    scopes: str
    _channel_error: Callable[[str], str | None]

    @staticmethod
    def _metadata_error(args: dict[str, Any]) -> dict[str, Any] | None:
        """invalid_metadata_format unless metadata is absent or {event_type: str, event_payload: object}."""
        meta = args.get("metadata")
        if meta in (None, ""):
            return None
        if (
            not isinstance(meta, dict)
            or not isinstance(meta.get("event_type"), str)
            or not meta["event_type"]
            or not isinstance(meta.get("event_payload"), dict)
        ):
            return _error("invalid_metadata_format")
        return None

    def _reading_error(self, channel: str) -> dict[str, Any] | None:
        """channel_not_found, or missing_scope when the token cannot read this kind of conversation."""
        error = self._channel_error(channel)
        if error:
            return _error(error)
        needed = _SCOPE_FOR.get(channel[:1])
        if needed is None:
            return _error("channel_not_found")  # a user id is not a conversation id
        if needed not in self.scopes.split(","):
            return _error("missing_scope", needed=needed, provided=self.scopes)
        return None

    @staticmethod
    def _window(args: dict[str, Any]) -> tuple[Decimal, Decimal, bool, int] | dict[str, Any]:
        """(oldest, latest, inclusive, limit) from the arguments, or the error Slack answers."""
        oldest = _stamp(args.get("oldest") or 0)
        if oldest is None:
            return _error("invalid_ts_oldest")
        latest = _stamp(args["latest"]) if args.get("latest") not in (None, "") else Decimal("9999999999.999999")
        if latest is None:
            return _error("invalid_ts_latest")
        try:
            limit = int(args.get("limit") or 100)
        except (TypeError, ValueError):
            return _error("invalid_limit")
        return oldest, latest, _flag(args.get("inclusive")), max(1, min(limit, MAX_HISTORY_LIMIT))

    @staticmethod
    def _shown(message: dict[str, Any], with_metadata: bool) -> dict[str, Any]:
        shown = copy.deepcopy(message)
        if not with_metadata:
            shown.pop("metadata", None)
        return shown

    def _page(
        self,
        found: list[dict[str, Any]],
        args: dict[str, Any],
        limit: int,
        after_cursor: Decimal | None,
        newest_first: bool,
    ) -> dict[str, Any]:
        if after_cursor is not None:  # the cursor names the first message of this page
            if newest_first:
                found = [m for m in found if Decimal(m["ts"]) <= after_cursor]
            else:
                found = [m for m in found if Decimal(m["ts"]) >= after_cursor]
        page, rest = found[:limit], found[limit:]
        body: dict[str, Any] = {
            "ok": True,
            "messages": [self._shown(m, _flag(args.get("include_all_metadata"))) for m in page],
            "has_more": bool(rest),
        }
        if rest:
            body["response_metadata"] = {"next_cursor": _cursor(rest[0]["ts"])}
        return body

    def _conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        """conversations.history: a channel's top-level messages, newest first."""
        channel = str(args.get("channel") or "")
        error = self._reading_error(channel)
        if error:
            return error
        window = self._window(args)
        if isinstance(window, dict):
            return window
        oldest, latest, inclusive, limit = window
        after_cursor = None
        if args.get("cursor"):
            after_cursor = _from_cursor(str(args["cursor"]))
            if after_cursor is None:
                return _error("invalid_cursor")

        def inside(ts: Decimal) -> bool:
            return oldest <= ts <= latest if inclusive else oldest < ts < latest

        found = [
            m
            for m in self._messages.get(channel, [])
            if (m.get("thread_ts") in (None, m["ts"]) or m.get("subtype") == "thread_broadcast")
            and inside(Decimal(m["ts"]))
        ]
        found.sort(key=lambda m: Decimal(m["ts"]), reverse=True)
        body = self._page(found, args, limit, after_cursor, newest_first=True)
        return {**body, "pin_count": 0, "channel_actions_ts": None, "channel_actions_count": 0}

    def _conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        """conversations.replies: a thread's parent, then its replies oldest first."""
        channel = str(args.get("channel") or "")
        error = self._reading_error(channel)
        if error:
            return error
        if not args.get("ts"):
            return _error("invalid_arguments", response_metadata={"messages": ["[ERROR] missing required field: ts"]})
        window = self._window(args)
        if isinstance(window, dict):
            return window
        oldest, latest, inclusive, limit = window
        after_cursor = None
        if args.get("cursor"):
            after_cursor = _from_cursor(str(args["cursor"]))
            if after_cursor is None:
                return _error("invalid_cursor")
        messages = self._messages.get(channel, [])
        target = next((m for m in messages if m["ts"] == str(args["ts"])), None)
        if target is None:
            return _error("thread_not_found")
        root_ts = target.get("thread_ts") or target["ts"]
        root = next((m for m in messages if m["ts"] == root_ts), target)

        def inside(ts: Decimal) -> bool:
            return oldest <= ts <= latest if inclusive else oldest < ts < latest

        replies = [
            m for m in messages if m.get("thread_ts") == root_ts and m["ts"] != root_ts and inside(Decimal(m["ts"]))
        ]
        replies.sort(key=lambda m: Decimal(m["ts"]))
        found = [root, *replies] if after_cursor is None else replies
        return self._page(found, args, limit, after_cursor, newest_first=False)
