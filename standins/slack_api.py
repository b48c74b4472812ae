"""Local stand-in for the Slack Web API (slack.com/api/*) and response_url endpoints."""

from __future__ import annotations

import bisect
import contextlib
import copy
import json
import logging
import math
import re
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from standins.slack_files import FilesMixin
from standins.slack_history import HistoryMixin

__all__ = ["SlackCall", "SlackStandIn"]

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 40_000  # chat.postMessage answers msg_too_long beyond this
MAX_BLOCKS = 50  # Block Kit limit for messages
MAX_ATTACHMENTS = 100  # beyond this Slack answers too_many_attachments
RESPONSE_URL_MAX_USES = 5  # Slack: up to 5 responses per response_url ...
RESPONSE_URL_TTL = 30 * 60.0  # ... within 30 minutes
# Form-encoded clients send these as JSON strings; JSON clients send them as structures.
JSON_STRING_ARGS = ("blocks", "attachments", "view", "metadata")
FAULT_KINDS = frozenset({"ratelimited", "server_error", "unavailable", "error", "timeout"})
DEFAULT_TIMEOUT_DELAY = 30.0
DEFAULT_SCOPES = (
    "chat:write",
    "commands",
    "channels:history",
    "groups:history",
    "channels:read",
    "usergroups:read",
    "users:read",
    "users:read.email",
)
BLOCKS_ONLY_TEXT = "This content can't be displayed."  # what Slack stores as text for blocks-only
JSON_TYPE = "application/json; charset=utf-8"
_USER_ID = re.compile(r"^[UW][A-Z0-9]+$")


@dataclass(frozen=True)
class SlackCall:
    """One request the stand-in received, with the status it answered."""

    method: str
    args: dict[str, Any]
    headers: dict[str, str]
    status: int
    at: float
    key: str | None = None
    response: dict[str, Any] | None = None  # the JSON body we answered, when it was JSON

    @property
    def error(self) -> str | None:
        """The Slack error code we answered, if any."""
        return None if self.response is None else self.response.get("error")


@dataclass(frozen=True)
class _Fault:
    """One queued fault for one future call."""

    kind: str
    retry_after: int
    error: str | None
    delay: float


@dataclass(frozen=True)
class _Answer:
    """An HTTP answer ready to be written."""

    status: int
    body: bytes
    headers: dict[str, str]
    payload: dict[str, Any] | None = None


@dataclass
class _Hook:
    """State of one response_url."""

    created: float
    channel: str | None = None
    message_ts: str | None = None
    bodies: list[dict[str, Any]] = field(default_factory=list)


def _json(status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> _Answer:
    """Build a JSON answer."""
    return _Answer(
        status,
        json.dumps(payload).encode("utf-8"),
        {"Content-Type": JSON_TYPE, **(headers or {})},
        payload,
    )


def _text(status: int, text: str, content_type: str = "text/plain; charset=utf-8") -> _Answer:
    """Build a plain-text answer."""
    return _Answer(status, text.encode("utf-8"), {"Content-Type": content_type})


def _err(error: str, messages: list[str] | None = None) -> dict[str, Any]:
    """Build a Slack API error body (HTTP 200, ok false)."""
    body: dict[str, Any] = {"ok": False, "error": error}
    if messages:
        body["response_metadata"] = {"messages": messages}
    return body


def _truthy(value: Any) -> bool:
    """Read a Slack boolean arg, which form clients send as "1"/"true"."""
    return value in (True, 1, "1", "true", "True")


class _Server(ThreadingHTTPServer):
    """The HTTP server, holding a reference to its stand-in."""

    daemon_threads = True

    def __init__(self, standin: SlackStandIn) -> None:
        self.standin = standin
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log handler errors quietly; clients hanging up is routine here."""
        log.debug("slack stand-in: error serving %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    """Reads one request, lets the stand-in decide, writes the answer."""

    protocol_version = "HTTP/1.1"
    timeout = 30  # idle keep-alive connections must not pin a thread forever
    server: _Server

    def setup(self) -> None:
        """Register the connection so stop() can unblock it."""
        super().setup()
        self.server.standin._track(self.connection)

    def finish(self) -> None:
        """Unregister the connection."""
        try:
            super().finish()
        finally:
            self.server.standin._untrack(self.connection)

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        """Handle POST (what slack_sdk always sends)."""
        self._dispatch()

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        """Handle GET, which Slack also accepts for Web API methods."""
        self._dispatch()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base
        """Send access logs to logging instead of stderr."""
        log.debug("slack stand-in: " + format, *args)

    def _dispatch(self) -> None:
        """Answer one request."""
        at = time.monotonic()
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        standin = self.server.standin
        answer, delay = standin._handle(self.command, self.path, headers, raw, at)
        if delay > 0 and standin._stopping.wait(delay):
            # Stopping: drop the request unanswered, as a dead server would.
            self.close_connection = True
            return
        try:
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)
        except OSError:
            # The client gave up (e.g. its timeout fired); nothing left to tell it.
            self.close_connection = True


class SlackStandIn(FilesMixin, HistoryMixin):
    """A stateful, fault-injectable fake of slack.com/api and response URLs on 127.0.0.1."""

    def __init__(
        self,
        bot_token: str = "xoxb-standin",  # noqa: S107 - a fake token for a fake server
        *,
        team_id: str = "T0STANDIN",
        bot_user_id: str = "U0BOT",
        bot_id: str = "B0STANDIN",
        app_id: str = "A0STANDIN",
        channels: Iterable[str] | None = None,
        usergroups: dict[str, list[str]] | None = None,
        per_channel_rate: float | None = None,
        per_channel_burst: int = 3,
        scopes: Iterable[str] = DEFAULT_SCOPES,
    ) -> None:
        """Configure the workspace; call start() (or use `with`) to listen."""
        self.bot_token = bot_token
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.per_channel_rate = per_channel_rate
        self.per_channel_burst = max(1, per_channel_burst)
        self.scopes = ",".join(scopes)
        self.latency = 0.0
        self.response_url_max_uses = RESPONSE_URL_MAX_USES
        self.response_url_ttl = RESPONSE_URL_TTL
        self._channels: set[str] | None = None if channels is None else set(channels)
        self._usergroups = {k: list(v) for k, v in (usergroups or {}).items()}
        # One lock for all state; the condition lets wait_for wake on new calls.
        self._cond = threading.Condition(threading.Lock())
        self._calls: list[SlackCall] = []
        self._messages: dict[str, list[dict[str, Any]]] = {}
        self._views: dict[str, dict[str, Any]] = {}
        self._homes: dict[str, dict[str, Any]] = {}
        self._hooks: dict[str, _Hook] = {}
        self._faults: dict[str, deque[_Fault]] = {}
        self._buckets: dict[str, tuple[float, float]] = {}
        self._last_ts_us = 0
        self._view_seq = 0
        self._conns: set[socket.socket] = set()
        self._conn_threads: set[threading.Thread] = set()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._url: str | None = None
        self._methods: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "views.open": self._views_open,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "usergroups.users.list": self._usergroups_users_list,
            "conversations.info": self._conversations_info,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "users.info": self._users_info,
            "chat.getPermalink": self._chat_get_permalink,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete,
        }
        self._init_files()

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> SlackStandIn:
        """Bind an ephemeral port on 127.0.0.1 and serve in a daemon thread."""
        with self._cond:
            if self._server is not None:
                return self
            self._stopping.clear()
            server = _Server(self)
            self._server = server
            self._url = f"http://127.0.0.1:{server.server_address[1]}"
            # A short poll interval keeps stop() fast; tests start many servers.
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.01},
                name="slack-standin",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, unblock in-flight requests and close every socket."""
        with self._cond:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is None:
            return
        self._stopping.set()  # wakes handlers sleeping on latency or a timeout fault
        server.shutdown()
        with self._cond:
            conns = list(self._conns)
            threads = list(self._conn_threads)
        for conn in conns:
            with contextlib.suppress(OSError):  # already closed by the client
                conn.shutdown(socket.SHUT_RDWR)  # unblocks handlers waiting on keep-alive reads
        for t in threads:
            t.join(timeout=2.0)
        server.server_close()
        if thread is not None:
            thread.join(timeout=2.0)

    def __enter__(self) -> SlackStandIn:
        """Start on entering the block."""
        return self.start()

    def __exit__(self, *exc: object) -> None:
        """Stop on leaving the block."""
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:PORT."""
        if self._url is None:
            raise RuntimeError("SlackStandIn is not started; call start() first")
        return self._url

    @property
    def api_url(self) -> str:
        """What WebClient(base_url=...) takes."""
        return self.url + "/api/"

    # ----------------------------------------------------------------- inspection

    @property
    def calls(self) -> list[SlackCall]:
        """Snapshot of every call, in arrival order."""
        with self._cond:
            return list(self._calls)

    def calls_to(self, method: str) -> list[SlackCall]:
        """Snapshot of the calls to one method ("response_url" for response URL posts)."""
        with self._cond:
            return [c for c in self._calls if c.method == method]

    @property
    def messages(self) -> dict[str, list[dict[str, Any]]]:
        """Snapshot of channel -> messages as stored."""
        with self._cond:
            return copy.deepcopy(self._messages)

    @property
    def views(self) -> dict[str, dict[str, Any]]:
        """Snapshot of view id -> the view as last opened or updated."""
        with self._cond:
            return copy.deepcopy(self._views)

    @property
    def homes(self) -> dict[str, dict[str, Any]]:
        """Snapshot of user id -> their Home tab as last published."""
        with self._cond:
            return copy.deepcopy(self._homes)

    def responses(self, key: str) -> list[dict[str, Any]]:
        """JSON bodies accepted by that response URL, in order."""
        with self._cond:
            hook = self._hooks.get(key)
            return copy.deepcopy(hook.bodies) if hook else []

    def wait_for(self, predicate: Callable[[list[SlackCall]], bool], timeout: float = 5.0) -> list[SlackCall]:
        """Wait until predicate(calls) is true and return the calls; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                snapshot = list(self._calls)
            # Evaluated outside the lock so the predicate may use other accessors.
            if predicate(snapshot):
                return snapshot
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"slack stand-in: condition not met within {timeout}s; "
                    f"{len(snapshot)} calls: {self._summary(snapshot)}"
                )
            with self._cond:
                if len(self._calls) == len(snapshot):
                    self._cond.wait(min(remaining, 0.05))

    @staticmethod
    def _summary(calls: list[SlackCall], last: int = 20) -> str:
        """One line per call for failure messages."""
        if not calls:
            return "(none)"
        parts = [
            f"{c.method}{'[' + c.key + ']' if c.key else ''}->{c.status}" + (f" {c.error}" if c.error else "")
            for c in calls[-last:]
        ]
        skipped = f"... {len(calls) - last} earlier; " if len(calls) > last else ""
        return skipped + "; ".join(parts)

    # ----------------------------------------------------------------- control

    def response_url(self, key: str | None = None, *, channel: str | None = None, message_ts: str | None = None) -> str:
        """A URL on the stand-in that accepts response_url posts.

        With channel (and message_ts), posts act on that channel/message like Slack:
        replace_original/delete_original edit it, response_type=in_channel posts to it.
        """
        key = key or secrets.token_urlsafe(12)
        with self._cond:
            hook = self._hooks.setdefault(key, _Hook(created=time.monotonic()))
            if channel is not None:
                hook.channel = channel
            if message_ts is not None:
                hook.message_ts = message_ts
        return f"{self.url}/actions/{self.team_id}/{quote(key, safe='')}"

    def fail_next(
        self,
        method: str,
        n: int = 1,
        *,
        kind: str = "ratelimited",
        retry_after: int = 1,
        error: str | None = None,
        delay: float = 0.0,
    ) -> None:
        """Make the next n calls of method ("*" = any Web API method) fail as `kind`."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(FAULT_KINDS)}")
        if kind == "error" and not error:
            raise ValueError('kind="error" needs error=..., e.g. "channel_not_found"')
        if error is not None and kind != "error":
            # Catches fail_next(m, error="x") silently meaning a 429.
            raise ValueError(f'error={error!r} is only used with kind="error"')
        if n < 1:
            raise ValueError("n must be >= 1")
        if kind == "timeout" and delay <= 0:
            delay = DEFAULT_TIMEOUT_DELAY
        fault = _Fault(kind, int(retry_after), error, float(delay))
        with self._cond:
            self._faults.setdefault(method, deque()).extend([fault] * n)

    def add_channel(self, channel: str) -> None:
        """Make a channel exist (only matters when a channel list was given)."""
        with self._cond:
            if self._channels is not None:
                self._channels.add(channel)

    def set_usergroup(self, usergroup: str, users: list[str]) -> None:
        """Create or replace a user group's members."""
        with self._cond:
            self._usergroups[usergroup] = list(users)

    # ----------------------------------------------------------------- plumbing

    def _track(self, conn: socket.socket) -> None:
        """Remember an open connection and its handler thread."""
        with self._cond:
            self._conns.add(conn)
            self._conn_threads.add(threading.current_thread())

    def _untrack(self, conn: socket.socket) -> None:
        """Forget a finished connection."""
        with self._cond:
            self._conns.discard(conn)
            self._conn_threads.discard(threading.current_thread())

    def _handle(self, command: str, path: str, headers: dict[str, str], raw: bytes, at: float) -> tuple[_Answer, float]:
        """Route a request; returns the answer and how long to wait before sending it."""
        parts = urlsplit(path)
        if parts.path.startswith("/api/"):
            method = parts.path[len("/api/") :]
            args, parse_error = self._parse_args(parts.query, headers, raw)
            with self._cond:
                fault = self._pop_fault(method)
                answer = self._answer_api(method, args, headers, parse_error, fault)
                self._record(SlackCall(method, args, headers, answer.status, at, None, answer.payload))
                return answer, self.latency + (fault.delay if fault else 0.0)
        prefix = f"/actions/{self.team_id}/"
        if parts.path.startswith(prefix) and command == "POST":
            key = unquote(parts.path[len(prefix) :])
            return self._handle_response_url(key, headers, raw, at)
        if parts.path.startswith("/upload/v1/") and command == "POST":
            status, text = self._files_upload(parts.path[len("/upload/v1/") :], raw)
            with self._cond:
                self._record(SlackCall("upload", {"bytes": len(raw)}, headers, status, at))
            return _text(status, text), self.latency
        return _text(404, "Not Found"), self.latency

    @staticmethod
    def _parse_args(query: str, headers: dict[str, str], raw: bytes) -> tuple[dict[str, Any], str | None]:
        """Merge query and body args; returns (args, parse error code or None)."""
        args: dict[str, Any] = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
        ctype = headers.get("content-type", "").lower()
        if raw:
            if ctype.startswith("application/json"):
                try:
                    body = json.loads(raw.decode("utf-8"))
                except ValueError:  # includes UnicodeDecodeError
                    return args, "invalid_json"
                if not isinstance(body, dict):
                    return args, "invalid_json"
                args.update(body)
            elif not ctype or ctype.startswith("application/x-www-form-urlencoded"):
                form = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
                args.update({k: v[0] for k, v in form.items()})
        for name in JSON_STRING_ARGS:
            value = args.get(name)
            if isinstance(value, str) and value.lstrip().startswith(("[", "{")):
                # Left as a string when undecodable; validation answers *_format errors.
                with contextlib.suppress(ValueError):
                    args[name] = json.loads(value)
        return args, None

    def _pop_fault(self, method: str) -> _Fault | None:
        """Take the next queued fault for method, falling back to "*" for Web API methods."""
        names = ("response_url",) if method == "response_url" else (method, "*")
        for name in names:
            queue = self._faults.get(name)
            if queue:
                return queue.popleft()
        return None

    @staticmethod
    def _fault_answer(fault: _Fault) -> _Answer:
        """Answer for a non-timeout fault."""
        if fault.kind == "ratelimited":
            return _json(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(fault.retry_after)})
        if fault.kind == "server_error":
            return _text(500, "Internal Server Error")
        if fault.kind == "unavailable":
            return _text(503, "Service Unavailable")
        return _json(200, _err(fault.error or "internal_error"))

    def _record(self, call: SlackCall) -> None:
        """Insert a call in arrival order and wake waiters (lock held)."""
        bisect.insort(self._calls, call, key=lambda c: c.at)
        self._cond.notify_all()

    def _next_ts(self) -> str:
        """A unique, increasing Slack ts like 1700000000.000100 (lock held)."""
        self._last_ts_us = max(int(time.time() * 1_000_000), self._last_ts_us + 1)
        return f"{self._last_ts_us // 1_000_000}.{self._last_ts_us % 1_000_000:06d}"

    # ----------------------------------------------------------------- Web API

    def _answer_api(
        self,
        method: str,
        args: dict[str, Any],
        headers: dict[str, str],
        parse_error: str | None,
        fault: _Fault | None,
    ) -> _Answer:
        """Decide the answer to one Web API call (lock held)."""
        if fault is not None and fault.kind != "timeout":
            return self._fault_answer(fault)
        handler = self._methods.get(method)
        if handler is None:
            return _json(200, _err("unknown_method"))
        if parse_error:
            return _json(200, _err(parse_error))
        auth_error = self._auth_error(args, headers)
        if auth_error:
            return _json(200, _err(auth_error))
        if method == "chat.postMessage" and self.per_channel_rate:
            retry_after = self._take_channel_token(str(args.get("channel") or ""))
            if retry_after is not None:
                return _json(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)})
        return _json(200, handler(args), {"x-oauth-scopes": self.scopes})

    def _auth_error(self, args: dict[str, Any], headers: dict[str, str]) -> str | None:
        """not_authed / invalid_auth, or None when the token is ours."""
        authorization = headers.get("authorization", "")
        token: str | None = None
        if authorization.lower().startswith("bearer "):
            token = authorization[len("bearer ") :].strip()
        elif not headers.get("content-type", "").lower().startswith("application/json"):
            # Slack reads a token arg only from form/query, never from a JSON body.
            token = args.get("token")
        if not token:
            return "not_authed"
        return None if token == self.bot_token else "invalid_auth"

    def _take_channel_token(self, channel: str) -> int | None:
        """Token bucket per channel; returns Retry-After seconds when empty."""
        rate = float(self.per_channel_rate or 0)
        now = time.monotonic()
        tokens, last = self._buckets.get(channel, (float(self.per_channel_burst), now))
        tokens = min(float(self.per_channel_burst), tokens + (now - last) * rate)
        if tokens >= 1.0:
            self._buckets[channel] = (tokens - 1.0, now)
            return None
        self._buckets[channel] = (tokens, now)
        return max(1, math.ceil((1.0 - tokens) / rate))

    def _channel_error(self, channel: str) -> str | None:
        """channel_not_found for missing or (when a list was given) unknown channels."""
        if not channel or (self._channels is not None and channel not in self._channels):
            return "channel_not_found"
        return None

    @staticmethod
    def _content_error(args: dict[str, Any]) -> dict[str, Any] | None:
        """Validate text/blocks/attachments as chat.postMessage does."""
        text, blocks, attachments = args.get("text"), args.get("blocks"), args.get("attachments")
        if not text and not blocks and not attachments:
            return _err("no_text")
        if text is not None and len(str(text)) > MAX_TEXT_CHARS:
            return _err("msg_too_long")
        if blocks not in (None, ""):
            if isinstance(blocks, str):
                return _err("invalid_blocks_format")
            if not isinstance(blocks, list):
                return _err("invalid_blocks", ["[ERROR] must be an array [json-pointer:/blocks]"])
            for i, block in enumerate(blocks):
                if not isinstance(block, dict) or not block.get("type"):
                    return _err(
                        "invalid_blocks",
                        [f"[ERROR] missing required field: type [json-pointer:/blocks/{i}]"],
                    )
            if len(blocks) > MAX_BLOCKS:
                return _err(
                    "invalid_blocks",
                    [f"[ERROR] no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]"],
                )
        if attachments not in (None, ""):
            if not isinstance(attachments, list) or not all(isinstance(a, dict) for a in attachments):
                return _err("invalid_attachments")
            if len(attachments) > MAX_ATTACHMENTS:
                return _err("too_many_attachments")
        return None

    def _find_message(self, channel: str, ts: str) -> dict[str, Any] | None:
        """The stored message with that ts in that channel (lock held)."""
        for message in self._messages.get(channel, []):
            if message["ts"] == ts:
                return message
        return None

    def _store_message(self, channel: str, args: dict[str, Any], thread_ts: str | None = None) -> dict[str, Any]:
        """Create and store a bot message (lock held); thread_ts must be validated."""
        text = args.get("text")
        message: dict[str, Any] = {
            "user": self.bot_user_id,
            "type": "message",
            "ts": self._next_ts(),
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "text": str(text) if text else (BLOCKS_ONLY_TEXT if args.get("blocks") else ""),
            "team": self.team_id,
        }
        if args.get("username"):
            # A username override makes Slack store a legacy bot_message (the docs example).
            message["username"] = args["username"]
            message["subtype"] = "bot_message"
        for name in ("blocks", "attachments", "metadata"):
            if args.get(name):
                message[name] = copy.deepcopy(args[name])
        if thread_ts is not None:
            parent = self._find_message(channel, thread_ts)
            if parent is not None:
                message["thread_ts"] = thread_ts
                message["parent_user_id"] = parent["user"]
                if _truthy(args.get("reply_broadcast")):
                    message["subtype"] = "thread_broadcast"  # also shown in the channel's history
                parent["thread_ts"] = thread_ts
                parent["reply_count"] = parent.get("reply_count", 0) + 1
                users = parent.setdefault("reply_users", [])
                if self.bot_user_id not in users:
                    users.append(self.bot_user_id)
                parent["reply_users_count"] = len(users)
                parent["latest_reply"] = message["ts"]
        self._messages.setdefault(channel, []).append(message)
        return message

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        """auth.test for the bot token."""
        return {
            "ok": True,
            "url": "https://standin.slack.com/",
            "team": "Stand-in Workspace",
            "user": "standin_bot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        """chat.postMessage, storing the message."""
        channel = str(args.get("channel") or "")
        error = self._channel_error(channel)
        if error:
            return _err(error)
        content_error = self._content_error(args) or self._metadata_error(args)
        if content_error:
            return content_error
        thread_ts: str | None = None
        if args.get("thread_ts"):
            parent = self._find_message(channel, str(args["thread_ts"]))
            if parent is None:
                return _err("thread_not_found")
            # Replying to a reply lands in the same thread, under its root.
            thread_ts = parent.get("thread_ts", parent["ts"])
        message = self._store_message(channel, args, thread_ts)
        return {
            "ok": True,
            "channel": channel,
            "ts": message["ts"],
            "message": copy.deepcopy(message),
        }

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        """chat.update of a stored message."""
        channel = str(args.get("channel") or "")
        error = self._channel_error(channel)
        if error:
            return _err(error)
        message = self._find_message(channel, str(args.get("ts") or ""))
        if message is None:
            return _err("message_not_found")
        content_error = self._content_error(args)
        if content_error:
            return content_error
        if "text" in args:
            message["text"] = str(args["text"] or "")
        # Slack keeps blocks/attachments that are not sent; an empty value removes them.
        for name in ("blocks", "attachments"):
            if name in args:
                if args[name]:
                    message[name] = copy.deepcopy(args[name])
                else:
                    message.pop(name, None)
        message["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        return {
            "ok": True,
            "channel": channel,
            "ts": message["ts"],
            "text": message["text"],
            "message": copy.deepcopy(message),
        }

    def _chat_post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        """chat.postEphemeral; ephemeral messages are not stored."""
        channel = str(args.get("channel") or "")
        error = self._channel_error(channel)
        if error:
            return _err(error)
        if not args.get("user"):
            return _err("user_not_found")
        content_error = self._content_error(args)
        if content_error:
            return content_error
        return {"ok": True, "message_ts": self._next_ts()}

    def _build_view(self, spec: dict[str, Any], view_id: str, root_id: str, previous: str | None) -> dict[str, Any]:
        """A view as Slack returns it."""
        return {
            "id": view_id,
            "team_id": self.team_id,
            "type": spec["type"],
            "blocks": copy.deepcopy(spec.get("blocks", [])),
            "private_metadata": spec.get("private_metadata", ""),
            "callback_id": spec.get("callback_id", ""),
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{secrets.randbelow(10**8):08d}",
            "title": copy.deepcopy(spec.get("title")),
            "clear_on_close": bool(spec.get("clear_on_close", False)),
            "notify_on_close": bool(spec.get("notify_on_close", False)),
            "close": copy.deepcopy(spec.get("close")),
            "submit": copy.deepcopy(spec.get("submit")),
            "previous_view_id": previous,
            "root_view_id": root_id,
            "app_id": self.app_id,
            "external_id": spec.get("external_id", ""),
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
        }

    @staticmethod
    def _view_spec_error(args: dict[str, Any]) -> dict[str, Any] | None:
        """invalid_arguments (shaped like the docs example) when view is missing or malformed."""
        view = args.get("view")
        if not isinstance(view, dict) or not view.get("type"):
            return _err("invalid_arguments", ["invalid `view`"])
        return None

    def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        """views.open; any non-empty trigger_id is accepted."""
        if not args.get("trigger_id"):
            return _err("invalid_arguments", ["invalid `trigger_id`"])
        error = self._view_spec_error(args)
        if error:
            return error
        self._view_seq += 1
        view_id = f"V0STANDIN{self._view_seq:03d}"
        view = self._build_view(args["view"], view_id, view_id, None)
        self._views[view_id] = view
        return {"ok": True, "view": copy.deepcopy(view)}

    def _views_update(self, args: dict[str, Any]) -> dict[str, Any]:
        """views.update by view_id or external_id, honouring hash."""
        error = self._view_spec_error(args)
        if error:
            return error
        current: dict[str, Any] | None = None
        if args.get("view_id"):
            current = self._views.get(str(args["view_id"]))
        elif args.get("external_id"):
            current = next((v for v in self._views.values() if v["external_id"] == args["external_id"]), None)
        else:
            return _err("invalid_arguments", ["invalid `view_id`"])
        if current is None:
            return _err("not_found")
        if args.get("hash") and args["hash"] != current["hash"]:
            return _err("hash_conflict")
        view = self._build_view(args["view"], current["id"], current["root_view_id"], current["previous_view_id"])
        self._views[view["id"]] = view
        return {"ok": True, "view": copy.deepcopy(view)}

    def _views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        """views.publish of a Home tab (minimal)."""
        if not args.get("user_id"):
            return _err("invalid_arguments", ["invalid `user_id`"])
        error = self._view_spec_error(args)
        if error:
            return error
        user = str(args["user_id"])
        previous = self._homes.get(user)
        view_id = previous["id"] if previous else f"V0HOME{len(self._homes) + 1:04d}"
        view = self._build_view(args["view"], view_id, view_id, None)
        self._homes[user] = view
        return {"ok": True, "view": copy.deepcopy(view)}

    def _chat_get_permalink(self, args: dict[str, Any]) -> dict[str, Any]:
        """chat.getPermalink of a stored message (shaped like the docs example)."""
        channel = str(args.get("channel") or "")
        error = self._channel_error(channel)
        if error:
            return _err(error)
        ts = str(args.get("message_ts") or "")
        if self._find_message(channel, ts) is None:
            return _err("message_not_found")
        return {
            "ok": True,
            "channel": channel,
            "permalink": f"https://standin.slack.com/archives/{channel}/p{ts.replace('.', '')}",
        }

    def _usergroups_users_list(self, args: dict[str, Any]) -> dict[str, Any]:
        """usergroups.users.list: a plain list of user ids."""
        users = self._usergroups.get(str(args.get("usergroup") or ""))
        if users is None:
            return _err("no_such_subteam")
        return {"ok": True, "users": list(users)}

    def _conversations_info(self, args: dict[str, Any]) -> dict[str, Any]:
        """conversations.info (minimal public channel)."""
        channel = str(args.get("channel") or "")
        error = self._channel_error(channel)
        if error:
            return _err(error)
        return {
            "ok": True,
            "channel": {
                "id": channel,
                "name": channel.lower(),
                "is_channel": True,
                "is_group": False,
                "is_im": False,
                "is_private": False,
                "is_archived": False,
                "is_member": True,
                "created": 1700000000,
            },
        }

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        """users.info (minimal); the email is derived from the id."""
        user = str(args.get("user") or "")
        if not _USER_ID.match(user):
            return _err("user_not_found")
        name = user.lower()
        return {
            "ok": True,
            "user": {
                "id": user,
                "team_id": self.team_id,
                "name": name,
                "deleted": False,
                "real_name": f"User {user}",
                "tz": "Etc/UTC",
                "is_bot": user == self.bot_user_id,
                "profile": {
                    "real_name": f"User {user}",
                    "display_name": name,
                    "email": f"{name}@example.com",
                    "team": self.team_id,
                },
            },
        }

    # ----------------------------------------------------------------- response_url

    def _handle_response_url(self, key: str, headers: dict[str, str], raw: bytes, at: float) -> tuple[_Answer, float]:
        """Record and answer one post to a response URL."""
        body: Any = None
        with contextlib.suppress(ValueError):  # not JSON: answered as invalid_payload
            body = json.loads(raw.decode("utf-8"))
        args: dict[str, Any] = body if isinstance(body, dict) else {}
        with self._cond:
            fault = self._pop_fault("response_url")
            answer = self._answer_response_url(key, args, isinstance(body, dict), fault)
            self._record(SlackCall("response_url", args, headers, answer.status, at, key, answer.payload))
            return answer, self.latency + (fault.delay if fault else 0.0)

    def _answer_response_url(self, key: str, args: dict[str, Any], valid: bool, fault: _Fault | None) -> _Answer:
        """Decide the answer to a response URL post (lock held)."""
        if fault is not None and fault.kind != "timeout":
            if fault.kind == "error":
                return _json(400, _err(fault.error or "invalid_payload"))
            return self._fault_answer(fault)
        if not valid:
            return _json(400, _err("invalid_payload"))
        now = time.monotonic()
        # Unknown keys are accepted: the app may hold a URL minted by a payload we never saw.
        hook = self._hooks.setdefault(key, _Hook(created=now))
        if now - hook.created > self.response_url_ttl:
            return _json(404, _err("expired_url"))
        if len(hook.bodies) >= self.response_url_max_uses:
            return _json(404, _err("used_url"))
        if not _truthy(args.get("delete_original")):
            content_error = self._content_error(args)
            if content_error:
                return _json(400, content_error)
        hook.bodies.append(copy.deepcopy(args))
        self._apply_response(hook, args)
        return _text(200, "ok", "text/html")

    def _apply_response(self, hook: _Hook, args: dict[str, Any]) -> None:
        """Mirror a response on the linked channel/message, as Slack would (lock held)."""
        if hook.channel is None:
            return
        original = self._find_message(hook.channel, hook.message_ts) if hook.message_ts else None
        if _truthy(args.get("delete_original")):
            if original is not None:
                self._messages[hook.channel].remove(original)
        elif _truthy(args.get("replace_original")):
            if original is not None:
                original["text"] = str(args.get("text") or "")
                for name in ("blocks", "attachments"):
                    if args.get(name):
                        original[name] = copy.deepcopy(args[name])
                    else:
                        original.pop(name, None)
                original["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        elif args.get("response_type") == "in_channel":
            thread_ts = args.get("thread_ts")
            parent = self._find_message(hook.channel, str(thread_ts)) if thread_ts else None
            root = parent.get("thread_ts", parent["ts"]) if parent else None
            self._store_message(hook.channel, args, root)
