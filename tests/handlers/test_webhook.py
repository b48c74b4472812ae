"""POST /webhooks/stripe: signatures, shapes, duplicates, durability."""

from __future__ import annotations

import json
import time

import psycopg
import pytest
from conftest import WEBHOOK_SECRET, LiveServer, replace_settings
from freezegun import freeze_time
from support import fixture_json

from handlers.webhook import BadEvent, verify
from standins.signing import stripe_signature

EVENT = fixture_json("stripe/event_charge.refunded__stripe-ruby-mock.json")
BODY = json.dumps(EVENT).encode()


def _stored(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute("SELECT id, type, status FROM stripe_events ORDER BY id").fetchall()


def test_a_signed_event_is_stored_before_the_200_and_a_redelivery_is_not_stored_twice(web: LiveServer, conn) -> None:
    first = web.webhook(BODY)
    assert first.status_code == 200 and first.json() == {"received": True, "duplicate": False}
    assert _stored(conn) == [(EVENT["id"], "charge.refunded", "pending")]
    again = web.webhook(BODY)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert len(_stored(conn)) == 1


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing Stripe-Signature"),
        ("t=1,v0=abc", "No signatures found with expected scheme"),
        ("garbage", "Unable to extract timestamp"),
        (stripe_signature(BODY, "whsec_wrong"), "No signatures found matching"),
        (stripe_signature(BODY + b" ", WEBHOOK_SECRET), "No signatures found matching"),
        (stripe_signature(BODY, WEBHOOK_SECRET, timestamp=int(time.time()) - 301), "tolerance"),
    ],
    ids=["missing", "only_v0", "garbage", "wrong_secret", "body_changed", "stale"],
)
def test_bad_signatures_get_400_with_a_reason_and_nothing_is_written(web: LiveServer, conn, header, reason) -> None:
    if header is None:
        resp = web.http.post(f"{web.url}/webhooks/stripe", data=BODY, timeout=5)
    else:
        resp = web.webhook(BODY, header=header)
    assert resp.status_code == 400
    assert reason in resp.json()["reason"]
    assert _stored(conn) == []


def test_one_changed_byte_fails() -> None:
    header = stripe_signature(BODY, WEBHOOK_SECRET)
    tampered = BODY.replace(b'"amount": 100', b'"amount": 900', 1)
    assert tampered != BODY
    with pytest.raises(BadEvent, match="matching"):
        verify(tampered, header, (WEBHOOK_SECRET,), 300)


def test_two_v1_signatures_of_which_one_is_valid() -> None:
    good = stripe_signature(BODY, WEBHOOK_SECRET, timestamp=int(time.time()))
    bad = stripe_signature(BODY, "whsec_other", timestamp=int(time.time())).split(",")[1]
    verify(BODY, f"{good},{bad}", (WEBHOOK_SECRET,), 300)
    verify(BODY, f"{good.split(',')[0]},{bad},{good.split(',')[1]}", (WEBHOOK_SECRET,), 300)


def test_any_configured_secret_may_have_signed_it() -> None:
    header = stripe_signature(BODY, "whsec_connect_endpoint")
    verify(BODY, header, ("whsec_platform", "whsec_connect_endpoint"), 300)
    with pytest.raises(BadEvent):
        verify(BODY, header, ("whsec_platform",), 300)


@pytest.mark.parametrize(("age", "accepted"), [(299, True), (300, True), (301, False)])
def test_tolerance_boundary(age: int, accepted: bool) -> None:
    signed_at = 1_790_000_000
    header = stripe_signature(BODY, WEBHOOK_SECRET, timestamp=signed_at)
    with freeze_time(time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(signed_at + age))):
        if accepted:
            verify(BODY, header, (WEBHOOK_SECRET,), 300)
        else:
            with pytest.raises(BadEvent, match="tolerance"):
                verify(BODY, header, (WEBHOOK_SECRET,), 300)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "not a Stripe event"),
        (json.dumps({**EVENT, "object": "charge"}).encode(), "object is not 'event'"),
        (
            json.dumps({"object": "v2.core.event", "id": "evt_1", "type": "v1.billing.meter.no_meter_found"}).encode(),
            "thin (v2) events",
        ),
        (json.dumps({**EVENT, "id": "ch_1"}).encode(), "evt_"),
        (json.dumps({**EVENT, "data": {}}).encode(), "data.object"),
        (json.dumps({k: v for k, v in EVENT.items() if k != "created"}).encode(), "created"),
    ],
)
def test_bodies_that_are_not_snapshot_events_get_400(web: LiveServer, conn, body: bytes, reason: str) -> None:
    resp = web.webhook(body)
    assert resp.status_code == 400 and reason in resp.json()["reason"]
    assert _stored(conn) == []


def test_a_body_over_1_mb_gets_413(web: LiveServer, conn) -> None:
    body = json.dumps({**EVENT, "padding": "x" * (1024 * 1024)}).encode()
    resp = web.webhook(body)
    assert resp.status_code == 413 and resp.json()["reason"]
    assert _stored(conn) == []


def test_database_down_answers_503_so_stripe_retries(make_server_for, settings, slack, tmp_path) -> None:
    from store import embedded, migrate

    server = embedded.server_for(tmp_path / "pg")
    migrate.migrate(server.get_uri())
    web = make_server_for(replace_settings(settings, database_url=server.get_uri()), slack)
    assert web.webhook(BODY).status_code == 200
    server.cleanup()
    other = json.dumps({**EVENT, "id": "evt_while_down"}).encode()
    down = web.webhook(other)
    assert down.status_code == 503 and "Stripe will retry" in down.json()["reason"]
    server = embedded.server_for(tmp_path / "pg")
    assert web.webhook(other).status_code == 200  # Stripe's retry lands once the database is back
    with psycopg.connect(server.get_uri()) as c:
        assert c.execute("SELECT count(*) FROM stripe_events").fetchone()[0] == 2
    server.cleanup()
