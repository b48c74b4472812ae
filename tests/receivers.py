"""A receiver of outgoing hooks for tests: verifies each with the `standardwebhooks` library, as a
receiving system would, and can be taken down (503) or made to refuse connections."""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


class HookReceiver:
    """POST endpoint at `url`; `received` holds each verified delivery (id, type, payload) in order."""

    def __init__(self, secret: str):
        self.verifier = Webhook(secret)
        self.received: list[dict[str, Any]] = []
        self.refused: list[str] = []  # why a delivery failed verification
        self.down = False  # answer 503 (a receiver that is up but failing)
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = receiver._receive(body, dict(self.headers.items()))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks/refund-desk"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def _receive(self, body: bytes, headers: dict[str, str]) -> int:
        if self.down:
            return 503
        try:
            payload = self.verifier.verify(body, headers)
        except WebhookVerificationError as exc:
            with self._lock:
                self.refused.append(str(exc))
            return 400
        lowered = {k.lower(): v for k, v in headers.items()}
        with self._lock:
            self.received.append({"id": lowered["webhook-id"], "type": payload["type"], "payload": payload})
        return 204

    def ids_by_type(self) -> Counter:
        """How many distinct message ids arrived per type."""
        with self._lock:
            return Counter(event_type for _, event_type in {(r["id"], r["type"]) for r in self.received})

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        """Deliveries of one type."""
        with self._lock:
            return [r for r in self.received if r["type"] == event_type]

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def json_body(record: dict[str, Any]) -> str:
    """A delivery's payload as text (for substring checks)."""
    return json.dumps(record["payload"], ensure_ascii=False)
