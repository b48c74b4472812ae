"""OUTGOING_WEBHOOKS parsing, type patterns, secrets and message ids, as tables."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from domain.hooks import Endpoint, endpoint_label, envelope, message_id, parse_endpoints, secret_problem


def test_endpoints_and_their_types() -> None:
    parsed = parse_endpoints(
        "https://crm.example.com/hooks?token=abc|incident.*,refund.failed ; http://10.0.0.5:8080/in|dispute.opened"
    )
    assert parsed == (
        Endpoint("https://crm.example.com/hooks?token=abc", ("incident.*", "refund.failed")),
        Endpoint("http://10.0.0.5:8080/in", ("dispute.opened",)),
    )
    assert parse_endpoints("") == ()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("https://a.example", "should look like"),  # no types
        ("ftp://a.example|incident.opened", "should look like"),
        ("https://a.example|", "no event type"),
        ("https://a.example|refund.created", "refund.created is not one of"),
        ("https://a.example|charge.*", "charge.* is not one of"),
    ],
)
def test_bad_endpoints_are_refused_with_the_reason(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_endpoints(text)


@pytest.mark.parametrize(
    ("types", "event_type", "wanted"),
    [
        (("incident.*",), "incident.escalated", True),
        (("incident.*",), "refund.failed", False),
        (("refund.failed",), "refund.failed", True),
        (("refund.failed",), "refund.succeeded", False),
        (("payment.*", "dispute.closed"), "payment.fully_refunded", True),
        (("dispute.*",), "dispute.opened", True),
    ],
)
def test_which_endpoint_wants_which_type(types: tuple[str, ...], event_type: str, wanted: bool) -> None:
    assert Endpoint("https://x.example", types).wants(event_type) is wanted


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("whsec_" + base64.b64encode(b"k" * 32).decode(), None),
        ("whsec_" + base64.b64encode(b"k" * 24).decode(), None),
        ("whsec_" + base64.b64encode(b"k" * 16).decode(), "24 to 64 random bytes"),
        ("whsec_" + base64.b64encode(b"k" * 65).decode(), "24 to 64 random bytes"),
        ("sk_" + base64.b64encode(b"k" * 32).decode(), "should start with whsec_"),
        ("whsec_not base64!", "followed by base64"),
    ],
)
def test_secrets_as_the_specification_defines_them(secret: str, problem: str | None) -> None:
    got = secret_problem(secret)
    assert (got is None) if problem is None else (problem in (got or ""))


def test_a_message_id_is_stable_per_fact_and_the_envelope_is_the_specifications() -> None:
    assert message_id("refund.succeeded:re_1") == message_id("refund.succeeded:re_1")
    assert message_id("refund.succeeded:re_1") != message_id("refund.failed:re_1")
    assert message_id("x").startswith("msg_")
    at = datetime(2026, 12, 1, 12, 0, 5, 123456, tzinfo=UTC)
    assert envelope("refund.failed", {"refund": "re_1"}, at) == {
        "type": "refund.failed",
        "timestamp": "2026-12-01T12:00:05.123Z",
        "data": {"refund": "re_1"},
    }


def test_an_endpoint_is_logged_without_its_path_or_query() -> None:
    assert endpoint_label("https://crm.example.com/hooks?token=secret") == "https://crm.example.com"
