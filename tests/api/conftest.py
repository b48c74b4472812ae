"""The API under test: a live app, keys made the way the CLI makes them, and every answer checked against
openapi.json (openapi-core) before a test reads it."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import requests
from conftest import WEBHOOK_SECRET, LiveServer, replace_settings
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

from api.openapi import document
from domain.clock import utcnow
from domain.ratelimit import RateLimit
from services import api_keys
from standins.slack_api import SlackStandIn
from standins.stripe_api import StripeStandIn

# RFC 9457's media type is JSON; openapi-core reads only application/json unless told.
SPEC = OpenAPI.from_dict(
    document(), config=Config(extra_media_type_deserializers={"application/problem+json": json.loads})
)


def checked(resp: requests.Response) -> requests.Response:
    """The response, once openapi-core has found it matches the document (status, headers, body)."""
    SPEC.validate_response(RequestsOpenAPIRequest(resp.request), RequestsOpenAPIResponse(resp))
    return resp


class Api:
    """Calls to /api/v1 with a key; every answer validated against openapi.json."""

    def __init__(self, web: LiveServer):
        self.web = web
        self.http = requests.Session()

    def key(self, name: str, scopes: str = "read,request") -> str:
        """A new key, made as `refund-desk api-keys create` makes it."""
        _, key = api_keys.create(self.web.deps.pool, name=name, scopes=scopes.split(","), actor="test", now=utcnow())
        return key

    def call(self, method: str, path: str, key: str | None = None, **kwargs) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        resp = self.http.request(method, f"{self.web.url}/api/v1{path}", headers=headers, timeout=30, **kwargs)
        return checked(resp)

    def get(self, path: str, key: str | None = None, **kwargs) -> requests.Response:
        return self.call("GET", path, key, **kwargs)

    def post(self, path: str, key: str | None = None, **kwargs) -> requests.Response:
        return self.call("POST", path, key, **kwargs)


@pytest.fixture
def make_api(make_server_for, settings, slack: SlackStandIn, stripe_api: StripeStandIn) -> Callable[..., Api]:
    """An API over a live app, with settings changed as asked (a generous rate limit unless one is given)."""
    made: list[Api] = []

    def make(**changes) -> Api:
        changes.setdefault("api_rate_limit", RateLimit(1000, 1000))
        configured = replace_settings(settings, approvers=frozenset({"S0APPROVERS"}), **changes)
        web = make_server_for(configured, slack)
        stripe_api.deliver_webhooks(f"{web.url}/webhooks/stripe", WEBHOOK_SECRET)
        api = Api(web)
        made.append(api)
        return api

    yield make
    for api in made:
        api.http.close()


@pytest.fixture
def api(make_api) -> Api:
    """The API with default settings (and a generous rate limit)."""
    return make_api()
