from __future__ import annotations

import json

from support import fixture_json

from domain.redact import CARD_FIELDS, without_card_data


def test_card_fields_are_dropped_and_brand_and_last4_kept() -> None:
    event = fixture_json("stripe/event_charge.failed__stripe-ruby-mock.json")
    stored = json.loads(without_card_data(event, json.dumps(event)))
    text = json.dumps(stored)
    assert not any(f'"{name}"' in text for name in CARD_FIELDS)
    card = stored["data"]["object"]["payment_method_details"]["card"]
    assert card["last4"] and card["brand"]
    assert stored["id"] == event["id"] and stored["data"]["object"]["amount"] == 2000


def test_events_without_card_fields_are_stored_byte_for_byte() -> None:
    event = fixture_json("stripe/event_charge.refund.updated__lago_basil.json")
    payload = json.dumps(event)
    assert without_card_data(event, payload) is payload
