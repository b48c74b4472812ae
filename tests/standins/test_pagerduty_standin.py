"""The PagerDuty Events API v2 stand-in answers as PagerDuty documents, for the real payloads in
tests/fixtures/pagerduty (the official example, the developer docs' and the official client's)."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
import requests
from support import FIXTURES, fixture_json

from standins.pagerduty_api import PagerDutyStandIn

KEY = "R0UTINGKEY0STANDIN0000000000000A"
REQUESTS = sorted(p.name for p in (FIXTURES / "pagerduty").glob("events_v2__*.json") if "response" not in p.name)
SUCCESS = fixture_json("pagerduty/events_v2__response_202_success__api_schema_example.json")
ERROR = fixture_json("pagerduty/events_v2__response_error__api_schema_example.json")


@pytest.fixture
def pd() -> Iterator[PagerDutyStandIn]:
    with PagerDutyStandIn(routing_keys=(KEY,)) as standin:
        yield standin


def _send(pd: PagerDutyStandIn, body) -> requests.Response:
    return requests.post(pd.events_url, json=body, timeout=5)


@pytest.mark.parametrize("name", REQUESTS)
def test_every_real_request_is_accepted_with_the_documented_answer(pd: PagerDutyStandIn, name: str) -> None:
    event = {**fixture_json(f"pagerduty/{name}"), "routing_key": KEY}
    if event["event_action"] != "trigger":
        # Acknowledge and resolve act on an open alert: open it first, as a monitoring tool would.
        _send(
            pd,
            {
                "routing_key": KEY,
                "event_action": "trigger",
                "dedup_key": event["dedup_key"],
                "payload": {"summary": "s", "source": "h", "severity": "info"},
            },
        )
    resp = _send(pd, event)
    assert resp.status_code == 202
    body = resp.json()
    assert set(body) == set(SUCCESS) and body["status"] == SUCCESS["status"] and body["message"] == SUCCESS["message"]
    assert body["dedup_key"] == event.get("dedup_key", body["dedup_key"]) and body["dedup_key"]


def test_a_trigger_without_dedup_key_gets_one_and_opens_a_new_alert_each_time(pd: PagerDutyStandIn) -> None:
    event = {**fixture_json("pagerduty/events_v2__trigger__python_pagerduty_test.json"), "routing_key": KEY}
    first, second = _send(pd, event).json()["dedup_key"], _send(pd, event).json()["dedup_key"]
    assert first != second and len(pd.opened) == 2


def test_de_duplication_acknowledge_and_resolve(pd: PagerDutyStandIn) -> None:
    trigger = {**fixture_json("pagerduty/events_v2__trigger__api_schema_example.json"), "routing_key": KEY}
    _send(pd, trigger)
    _send(pd, {**trigger, "payload": {**trigger["payload"], "summary": "worse", "severity": "critical"}})
    assert len(pd.opened) == 1 and pd.alerts["srv01/mysql"].summary == "worse"
    _send(pd, {"routing_key": KEY, "event_action": "acknowledge", "dedup_key": "srv01/mysql"})
    assert pd.alerts["srv01/mysql"].status == "acknowledged"
    _send(pd, {"routing_key": KEY, "event_action": "resolve", "dedup_key": "srv01/mysql"})
    assert pd.alerts["srv01/mysql"].status == "resolved"
    # Resolved: an acknowledge is dropped, a trigger with the same key opens a new alert.
    assert _send(pd, {"routing_key": KEY, "event_action": "acknowledge", "dedup_key": "srv01/mysql"}).status_code == 202
    _send(pd, trigger)
    assert len(pd.opened) == 2 and pd.alerts["srv01/mysql"].status == "triggered"


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"routing_key": "short"}, "Length of 'routing_key' is incorrect"),
        ({"routing_key": "X" * 32}, "Invalid routing key"),
        ({"event_action": "open"}, "'event_action' is invalid"),
        ({"payload": None}, "'payload' is missing or blank"),
        ({"payload": {"source": "h", "severity": "error"}}, "'payload.summary' is missing or blank"),
        ({"payload": {"summary": "s", "severity": "error"}}, "'payload.source' is missing or blank"),
        ({"payload": {"summary": "s", "source": "h", "severity": "fatal"}}, "'payload.severity' is invalid"),
        ({"payload": {"summary": "s" * 1025, "source": "h", "severity": "error"}}, "'payload.summary' is too long"),
        ({"dedup_key": "k" * 256}, "'dedup_key' must be a string of at most 255"),
        ({"event_action": "resolve", "dedup_key": None}, "'dedup_key' is missing or blank"),
    ],
)
def test_an_invalid_event_is_a_400_with_the_reason(pd: PagerDutyStandIn, change: dict, error: str) -> None:
    event = copy.deepcopy(fixture_json("pagerduty/events_v2__trigger__api_schema_example.json"))
    event["routing_key"] = KEY
    event.update(change)
    event = {k: v for k, v in event.items() if v is not None}
    resp = _send(pd, event)
    assert resp.status_code == 400
    body = resp.json()
    assert set(body) == set(ERROR) and body["message"] == "Event object is invalid"
    assert any(error in e for e in body["errors"]), body["errors"]
    assert pd.accepted() == []


def test_a_body_that_is_not_json_is_unrecognized(pd: PagerDutyStandIn) -> None:
    resp = requests.post(pd.events_url, data=b"{nope", headers={"Content-Type": "application/json"}, timeout=5)
    assert resp.status_code == 400 and resp.json() == ERROR


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_throttling_and_outages_are_injected_then_pass(pd: PagerDutyStandIn, status: int) -> None:
    pd.fail_next(2, status=status)
    event = {**fixture_json("pagerduty/events_v2__trigger__developer_docs_example.json"), "routing_key": KEY}
    assert [_send(pd, event).status_code for _ in range(3)] == [status, status, 202]
    assert len(pd.accepted("trigger")) == 1


def test_unreachable_when_stopped(pd: PagerDutyStandIn) -> None:
    url = pd.events_url
    pd.stop()
    with pytest.raises(requests.ConnectionError):
        requests.post(url, json={}, timeout=2)
    pd.start()
    assert pd.events_url == url
