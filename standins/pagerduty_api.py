"""Local stand-in for PagerDuty's Events API v2 (`POST /v2/enqueue`), for tests and the demo.

Speaks the API as PagerDuty documents it (reference/events-v2/openapiv3.json and the developer
docs' "Send an Alert Event"): JSON events with `routing_key` (32 characters) and `event_action`
(`trigger`, `acknowledge`, `resolve`); a trigger needs `payload.summary` (at most 1024
characters), `payload.source` and `payload.severity` (`critical`, `error`, `warning`, `info`);
`dedup_key` is at most 255 characters and required unless triggering. Answers 202
`{"status": "success", "message": "Event processed", "dedup_key": …}` (a trigger without a
dedup_key gets a generated one), 400 `{"status": "invalid event", "message": "Event object is
invalid", "errors": [...]}` for a bad event, 400 "Unrecognized object" for a body that is not a
JSON object, and, when told to, 429 and 5xx.

Alerts follow the documented de-duplication: a trigger opens an alert or is appended to the open
one with the same dedup_key; acknowledge and resolve act on the open alert and are dropped when
there is none; after a resolve, the same dedup_key opens a new alert. What the stand-in cannot
know (whether an unknown, well-formed routing key exists) it answers as an invalid event.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Alert", "PagerDutyStandIn"]

ROUTING_KEY_LENGTH = 32
MAX_SUMMARY = 1024
MAX_DEDUP_KEY = 255
SEVERITIES = ("critical", "warning", "error", "info")
ACTIONS = ("trigger", "acknowledge", "resolve")


@dataclass
class Alert:
    """One PagerDuty alert, as its de-duplication made it."""

    dedup_key: str
    status: str  # triggered, acknowledged, resolved
    severity: str
    summary: str
    log: list[dict[str, Any]] = field(default_factory=list)  # every event applied to it


@dataclass
class _Fault:
    status: int
    remaining: int


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, standin: PagerDutyStandIn, port: int) -> None:
        self.standin = standin
        super().__init__(("127.0.0.1", port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # clients that time out hang up on us; expected


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        """Answer one request."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        status, body = self.server.standin._handle(self.command, self.path, raw)
        data = json.dumps(body).encode() if body is not None else b""
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the client gave up

    do_GET = do_POST

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base
        return


class PagerDutyStandIn:
    """An in-process fake of events.pagerduty.com/v2/enqueue.

    `requests` holds every request (status, body); `events` the accepted ones; `alerts` the alerts
    by dedup_key as they stand (the latest alert per key).
    """

    def __init__(self, routing_keys: tuple[str, ...] = ("R0UTINGKEY0STANDIN0000000000000A",)) -> None:
        for key in routing_keys:
            if len(key) != ROUTING_KEY_LENGTH:
                raise ValueError(f"a routing key has {ROUTING_KEY_LENGTH} characters: {key!r}")
        self.routing_keys = set(routing_keys)
        self.requests: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.alerts: dict[str, Alert] = {}
        self.opened: list[Alert] = []  # every alert ever opened, in order
        self._faults: deque[_Fault] = deque()
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._port = 0

    # ------------------------------------------------------------------ lifecycle

    @property
    def events_url(self) -> str:
        """The enqueue URL (PAGERDUTY_EVENTS_URL)."""
        if not self._port:
            raise RuntimeError("PagerDutyStandIn is not started")
        return f"http://127.0.0.1:{self._port}/v2/enqueue"

    def start(self) -> PagerDutyStandIn:
        """Listen on an ephemeral port (the same one again after stop())."""
        self._server = _Server(self, self._port)
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="pagerduty-standin", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the socket: connections are refused ("PagerDuty is unreachable")."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(5)

    def __enter__(self) -> PagerDutyStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ faults and inspection

    def fail_next(self, n: int = 1, *, status: int = 500) -> None:
        """Answer the next n requests with `status` (429 or a 5xx), before looking at them."""
        with self._lock:
            self._faults.append(_Fault(status, n))

    def accepted(self, action: str | None = None) -> list[dict[str, Any]]:
        """Accepted events, optionally of one action, in order."""
        with self._lock:
            return [copy.deepcopy(e) for e in self.events if action is None or e["event_action"] == action]

    # ------------------------------------------------------------------ the API

    def _handle(self, method: str, path: str, raw: bytes) -> tuple[int, dict[str, Any] | None]:
        with self._lock:
            status, body = self._answer(method, path, raw)
            try:
                parsed: Any = json.loads(raw or b"null")
            except ValueError:
                parsed = raw.decode("utf-8", "replace")
            self.requests.append({"method": method, "path": path, "body": parsed, "status": status, "at": time.time()})
            return status, body

    def _answer(self, method: str, path: str, raw: bytes) -> tuple[int, dict[str, Any] | None]:
        if path.split("?", 1)[0] != "/v2/enqueue" or method != "POST":
            return 404, {"status": "Not Found", "message": f"{method} {path} is not an Events API v2 endpoint"}
        if self._faults:
            fault = self._faults[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                self._faults.popleft()
            if fault.status == 429:
                return 429, {
                    "status": "throttle event",
                    "message": "Requests for this service are arriving too quickly",
                }
            return fault.status, {
                "status": "Internal Server Error",
                "message": "An internal error occurred",
                "errors": ["Please retry"],
            }
        try:
            event = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            event = None
        if not isinstance(event, dict):
            return 400, {
                "status": "Unrecognized object",
                "message": "Event object format is unrecognized",
                "errors": ["JSON parse error"],
            }
        errors = _problems(event, self.routing_keys)
        if errors:
            return 400, {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
        dedup_key = event.get("dedup_key") or uuid.uuid4().hex
        self._apply(event, dedup_key)
        return 202, {"status": "success", "message": "Event processed", "dedup_key": dedup_key}

    def _apply(self, event: dict[str, Any], dedup_key: str) -> None:
        accepted = {**copy.deepcopy(event), "dedup_key": dedup_key}
        self.events.append(accepted)
        action = event["event_action"]
        alert = self.alerts.get(dedup_key)
        live = alert is not None and alert.status != "resolved"
        if action == "trigger":
            payload = event["payload"]
            if live and alert is not None:
                alert.severity, alert.summary = payload["severity"], payload["summary"]
                alert.log.append(accepted)
                return
            alert = Alert(dedup_key, "triggered", payload["severity"], payload["summary"], [accepted])
            self.alerts[dedup_key] = alert
            self.opened.append(alert)
        elif live and alert is not None:  # acknowledge or resolve an open alert; otherwise dropped
            alert.status = "acknowledged" if action == "acknowledge" else "resolved"
            alert.log.append(accepted)


def _blank(value: Any) -> bool:
    return not isinstance(value, str) or not value.strip()


def _problems(event: dict[str, Any], routing_keys: set[str]) -> list[str]:
    """What makes an event invalid, in PagerDuty's words as far as they are documented."""
    errors: list[str] = []
    key = event.get("routing_key")
    if not isinstance(key, str) or len(key) != ROUTING_KEY_LENGTH:
        errors.append(f"Length of 'routing_key' is incorrect (should be {ROUTING_KEY_LENGTH} characters)")
    elif key not in routing_keys:
        errors.append("Invalid routing key")
    action = event.get("event_action")
    if action not in ACTIONS:
        errors.append("'event_action' is invalid (must be one of the following: 'trigger', 'acknowledge' or 'resolve')")
    dedup_key = event.get("dedup_key")
    if dedup_key is not None and (not isinstance(dedup_key, str) or len(dedup_key) > MAX_DEDUP_KEY):
        errors.append(f"'dedup_key' must be a string of at most {MAX_DEDUP_KEY} characters")
    if action in {"acknowledge", "resolve"} and _blank(dedup_key):
        errors.append("'dedup_key' is missing or blank")
    if action == "trigger":
        payload = event.get("payload")
        if not isinstance(payload, dict):
            errors.append("'payload' is missing or blank")
            return errors
        for name in ("summary", "source"):
            if _blank(payload.get(name)):
                errors.append(f"'payload.{name}' is missing or blank")
        if isinstance(payload.get("summary"), str) and len(payload["summary"]) > MAX_SUMMARY:
            errors.append(f"'payload.summary' is too long (maximum is {MAX_SUMMARY} characters)")
        if payload.get("severity") not in SEVERITIES:
            errors.append(
                "'payload.severity' is invalid (must be one of the following: 'critical', 'warning', 'error' or 'info')"
            )
        details = payload.get("custom_details")
        if details is not None and not isinstance(details, dict | str):
            errors.append("'payload.custom_details' must be an object")
    return errors
