"""A bare authenticated endpoint: the floor the API benchmark compares `GET /api/v1/refund-requests` against.

`GET /bare` checks `Authorization: Bearer <key>` exactly as the API does (services.api_keys.authenticate:
one statement that finds the key by its hash and charges its rate bucket) and answers a fixed JSON.
Served like the real web process (`gunicorn 'bench.bare_api:create_app()'`, same workers), through a pool
built by our own `store.db.open_pool`, so the difference between the two is the list itself: parameters,
the keyset query, the rows as JSON.
"""

from __future__ import annotations

import os

from flask import Flask, Response, request

from domain.clock import utcnow
from domain.ratelimit import parse_rate_limit
from services import api_keys
from settings import Settings
from store import db

_OK = b'{"data":[],"has_more":false,"next_cursor":null}\n'


def create_app() -> Flask:
    """The Flask app factory (gunicorn: `bench.bare_api:create_app()`); reads DATABASE_URL, API_RATE_LIMIT."""
    settings = Settings(api_rate_limit=parse_rate_limit(os.environ.get("API_RATE_LIMIT", "10/s burst 20")))
    pool = db.open_pool(os.environ["DATABASE_URL"], max_size=int(os.environ.get("DB_POOL_MAX", "8")), name="bare")
    flask_app = Flask(__name__)

    @flask_app.get("/bare")
    def bare():
        _, _, key = request.headers.get("Authorization", "").partition(" ")
        caller = api_keys.authenticate(pool, settings, key.strip(), utcnow())
        if caller is None:
            return Response(b'{"error":"unauthorized"}\n', status=401, mimetype="application/json")
        if not caller.allowed:
            return Response(b'{"error":"rate-limited"}\n', status=429, mimetype="application/json")
        return Response(_OK, mimetype="application/json")

    @flask_app.get("/healthz")
    def healthz():
        return Response(b'{"status":"ok"}\n', mimetype="application/json")

    return flask_app
