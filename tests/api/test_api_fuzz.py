"""Property-based fuzzing of every route, generated from openapi.json by schemathesis (valid and invalid
parameters, bodies and headers): no answer is a 5xx, and every answer is one the document describes."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.openapi import document

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def target(api, stripe_api) -> tuple[str, dict[str, str]]:
    """A live app with some data to find, and a key with every scope."""
    seeded = stripe_api.add_payment(5000, "usd")
    key = api.key("fuzz")
    # Something for reads to find: a payment in the store and a request on it.
    api.get(f"/payments/{seeded['payment_intent']['id']}", key)
    api.post("/refund-requests", key, json={"payment": seeded["payment_intent"]["id"], "amount": "1"})
    return api.web.url, {"Authorization": f"Bearer {key}"}


# The document is static, so it is read at import; each test's live app is named at call time.
schema = schemathesis.openapi.from_dict(document())


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_every_route_answers_within_the_document(case, target) -> None:
    base_url, headers = target
    case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS, timeout=30)
