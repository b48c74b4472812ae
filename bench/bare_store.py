"""A bare store endpoint: the floor the webhook benchmark compares `POST /webhooks/stripe` against.

`POST /bare` reads the body, takes the event id from its first bytes without parsing or verifying
anything, inserts (id, raw body) into `bare_events`, and answers 200. Served exactly like the real
web process (`gunicorn 'bench.bare_store:create_app()'`, same workers and worker class), through a
pool built by our own `store.db.open_pool`, so the difference between the two is what our handler
adds: signature check, JSON parse and validation, the jsonb insert into the inbox, Flask's jsonify.
"""

from __future__ import annotations

import os
import re

import psycopg
from flask import Flask, Response, request

from store import db

TABLE_SQL = """
CREATE TABLE IF NOT EXISTS bare_events (
    id          text PRIMARY KEY,
    body        bytea NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
)
"""

# ON CONFLICT: a body sent twice (the benchmark's pool wrapped around) must not turn into a 500.
INSERT_SQL = "INSERT INTO bare_events (id, body) VALUES (%s, %s) ON CONFLICT (id) DO NOTHING"

# Stripe puts the event id first ({"id": "evt_…", …}); looking only at the head keeps this O(1).
_ID_RE = re.compile(rb'"id"\s*:\s*"([^"]{1,255})"')
_HEAD = 128

_OK = b'{"received":true}\n'


def ensure_table(conninfo: str) -> None:
    """Create bare_events (the benchmark calls this once, before gunicorn starts its workers)."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(TABLE_SQL)


def create_app() -> Flask:
    """The Flask app factory (gunicorn: `bench.bare_store:create_app()`); reads DATABASE_URL, DB_POOL_MAX."""
    # Built like app.build_deps builds ours: same function, same size, one pool per worker.
    pool = db.open_pool(os.environ["DATABASE_URL"], max_size=int(os.environ.get("DB_POOL_MAX", "8")), name="bare")
    flask_app = Flask(__name__)
    flask_app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024

    @flask_app.post("/bare")
    def bare():
        body = request.get_data(cache=False)
        found = _ID_RE.search(body, 0, _HEAD)
        if not found:
            return Response(b'{"error":"no id"}\n', status=400, mimetype="application/json")
        with pool.connection() as conn:
            conn.execute(INSERT_SQL, (found.group(1).decode("ascii", "replace"), body))
        return Response(_OK, mimetype="application/json")

    @flask_app.get("/healthz")
    def healthz():
        return Response(b'{"status":"ok"}\n', mimetype="application/json")

    return flask_app
