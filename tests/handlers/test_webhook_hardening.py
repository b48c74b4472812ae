"""POST /webhooks/stripe against signed events built to break it: what can never be stored is refused
with a reason, odd JSON gets a 4xx, one event's data never holds up the others, and no customer
data reaches a log line or an event's recorded error."""

from __future__ import annotations

import json
import logging
import time

import psycopg
import pytest
from click.testing import CliRunner
from conftest import STRIPE_KEY, WEBHOOK_SECRET, LiveServer
from freezegun import freeze_time
from support import fixture_json, random_id

from cli import main
from domain.clock import utcnow
from domain.models import refundable
from handlers.webhook import BadEvent, verify
from messages.blocks import payment_blocks
from standins.signing import stripe_signature
from store import payments as store

ORDINARY = fixture_json("stripe/event_charge.refunded__stripe-ruby-mock.json")
REFUND = fixture_json("stripe/event_charge.refund.updated__stripe-ruby-mock.json")
PAYMENT = fixture_json("stripe/event_payment_intent.payment_failed__lago_basil.json")
EMAIL = "customer@example.com"


def _refund_created(**changes) -> dict:
    event = json.loads(json.dumps(REFUND))
    event.update(id="evt_hardening1", type="refund.created")
    event.update(changes)
    return event


def _with_object(event: dict, **changes) -> dict:
    event = json.loads(json.dumps(event))
    event["data"]["object"].update(changes)
    return event


def _statuses(conn: psycopg.Connection) -> dict[str, tuple]:
    conn.rollback()
    rows = conn.execute("SELECT id, status, attempts, last_error FROM stripe_events").fetchall()
    return {r[0]: r[1:] for r in rows}


def _ordinary_is_applied(web: LiveServer, conn: psycopg.Connection) -> None:
    """An ordinary event sent after the others is stored and applied in one worker round."""
    assert web.webhook(ORDINARY).status_code == 200
    web.drain()
    assert _statuses(conn)[ORDINARY["id"]][0] == "processed"


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (_refund_created(id=random_id("evt_", 20_000)), "evt_ id"),
        (_refund_created(id=random_id("evt_", 3_000)), "evt_ id"),
        (_refund_created(id="evt_1;DROP"), "evt_ id"),
        (_with_object(_refund_created(), id=random_id("re_", 20_000)), "data.object id"),
        (_refund_created(created=-62135596900), "outside"),
        (_refund_created(created=10**12), "outside"),
        (_refund_created(created=0), "outside"),
        (_refund_created(created=True), "not an integer"),
        (_refund_created(created=1e20), "not an integer"),
        (_refund_created(created=2**63), "outside"),
        (_refund_created(created="1648319945"), "not an integer"),
        (_refund_created(account={"id": "acct_1"}), "account"),
        (_refund_created(account="org_1"), "account"),
        (_refund_created(api_version={"major": 2020}), "api_version"),
        (_refund_created(livemode="false"), "livemode"),
        (_refund_created(type="x" * 300), "event type"),
        (_refund_created(type=["refund.created"]), "event type"),
    ],
    ids=[
        "id_20kb",
        "id_3kb",
        "id_punctuation",
        "object_id_20kb",
        "created_year_1",
        "created_year_33658",
        "created_1970",
        "created_true",
        "created_1e20",
        "created_2_63",
        "created_string",
        "account_object",
        "account_not_acct",
        "api_version_object",
        "livemode_string",
        "type_300",
        "type_list",
    ],
)
def test_an_event_that_could_never_be_stored_gets_400_and_the_next_is_applied(
    web: LiveServer, conn, event: dict, reason: str
) -> None:
    resp = web.webhook(event)
    assert resp.status_code == 400 and reason in resp.json()["reason"]
    assert _statuses(conn) == {}
    _ordinary_is_applied(web, conn)


def _body(prefix: str, deep: str) -> str:
    """The refund event's JSON with `deep` as one more field of data.object, spliced in as raw text."""
    event = _refund_created()
    text = json.dumps(event)
    marker = '"object": "refund",'
    assert marker in text
    return text.replace(marker, f'{marker} "extra": {deep},', 1) if deep else prefix + text


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (_body("", "NaN"), "NaN"),
        (_body("", "Infinity"), "Infinity"),
        (_body("", "-Infinity"), "-Infinity"),
        (_body("\ufeff", ""), "byte order mark"),
        (_body("", "[" * 990 + "]" * 990), "nests deeper"),
        (_body("", "[" * 100 + "]" * 100), "nests deeper"),
        (_body("", '{"a":' * 70 + "1" + "}" * 70), "nests deeper"),
        (_body("", "1" * 5000), "not JSON"),  # more digits than Python converts
        (_body("", '"\\ud800 alone"'), "cannot be stored"),  # a lone surrogate: Postgres's JSON refuses it
        (_body("", "1e999999"), "cannot be stored"),  # beyond what Postgres's numeric holds
    ],
    ids=[
        "nan",
        "infinity",
        "minus_infinity",
        "bom",
        "nesting_990",
        "nesting_100",
        "nesting_objects_70",
        "huge_int",
        "lone_surrogate",
        "huge_exponent",
    ],
)
def test_odd_json_gets_400_with_a_reason(web: LiveServer, conn, body: str, reason: str) -> None:
    resp = web.webhook(body.encode())
    assert resp.status_code == 400, resp.text
    assert reason in resp.json()["reason"]
    assert _statuses(conn) == {}
    _ordinary_is_applied(web, conn)


def test_nesting_within_the_limit_is_stored(web: LiveServer, conn) -> None:
    body = _body("", '{"a":' * 40 + "1" + "}" * 40)
    assert web.webhook(body.encode()).status_code == 200
    web.drain()
    assert _statuses(conn)["evt_hardening1"][0] == "processed"


def test_a_nul_in_a_string_is_stored_as_a_replacement_character(web: LiveServer, conn) -> None:
    event = _with_object(_refund_created(), metadata={"note": "a\u0000b", "path": "C:\\u0000dir"})
    body = json.dumps(event)
    assert "\\u0000" in body and "\\\\u0000" in body  # one escape of U+0000, one escaped backslash
    resp = web.webhook(body)
    assert resp.status_code == 200 and resp.json()["duplicate"] is False
    web.drain()
    assert _statuses(conn)["evt_hardening1"] == ("processed", 1, None)
    metadata = conn.execute(
        "SELECT payload -> 'data' -> 'object' -> 'metadata' FROM stripe_events WHERE id = 'evt_hardening1'"
    ).fetchone()[0]
    assert metadata == {"note": "a\ufffdb", "path": "C:\\u0000dir"}  # the escaped backslash is left alone
    assert conn.execute("SELECT status FROM refunds WHERE id = 're_000000000000000000000000'").fetchone() == (
        "succeeded",
    )


def test_a_status_stripe_adds_later_is_stored_and_shown(web: LiveServer, conn, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    event = _with_object(
        {**PAYMENT, "type": "payment_intent.succeeded"}, status="requires_reauthorization", receipt_email=EMAIL
    )
    assert web.webhook(event).status_code == 200
    assert web.drain() == 1
    assert _statuses(conn)[PAYMENT["id"]] == ("processed", 1, None)
    view = store.find_view(conn, PAYMENT["data"]["object"]["id"])
    assert view is not None and view.payment.status == "requires_reauthorization"
    assert view.payment.customer_email == EMAIL
    shown = json.dumps(payment_blocks(view, now=utcnow()))
    assert "requires reauthorization" in shown
    assert not [r for r in caplog.records if EMAIL in r.getMessage()]


def test_a_refund_in_a_status_stripe_adds_later_still_holds_its_money(web: LiveServer, conn) -> None:
    pi = PAYMENT["data"]["object"]
    paid = _with_object({**PAYMENT, "type": "payment_intent.succeeded"}, status="succeeded", amount_received=11880)
    refund = _refund_created(id="evt_newrefundstatus", created=PAYMENT["created"] + 5)
    refund = _with_object(
        refund,
        id="re_newstatus1",
        amount=4000,
        charge=pi["latest_charge"],
        payment_intent=pi["id"],
        status="requires_review",
    )
    assert web.webhook(paid).status_code == 200 and web.webhook(refund).status_code == 200
    assert web.drain() == 2
    view = store.find_view(conn, pi["id"])
    assert [r.status for r in view.refunds] == ["requires_review"]
    assert refundable(view) == 11880 - 4000  # held like a pending refund, never offered again


def test_an_event_the_database_refuses_fails_alone_and_no_email_is_logged_or_recorded(
    web: LiveServer, conn, db_url: str, stripe_api, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    # A payment intent whose id is not a pi_ id: the payments table's CHECK refuses the row, and
    # Postgres's DETAIL would quote the whole row, customer email included.
    refused = _with_object(
        {**PAYMENT, "type": "payment_intent.succeeded", "created": 1_600_000_000},
        id="pix_3SVvxMQ8iJWBZFaM1Lao8ehu",
        receipt_email=EMAIL,
    )
    assert web.webhook(refused).status_code == 200
    assert web.webhook(ORDINARY).status_code == 200
    assert web.drain() == 2  # the refused event first (it is older), then the ordinary one
    statuses = _statuses(conn)
    assert statuses[ORDINARY["id"]][0] == "processed"
    status, attempts, error = statuses[PAYMENT["id"]]
    assert (status, attempts) == ("failed", 1)
    assert error.startswith("CheckViolation: ") and "violates check constraint" in error
    assert EMAIL not in error and "Failing row" not in error and "DETAIL" not in error
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert PAYMENT["id"] in logged  # the failure is logged, with its stack ...
    assert EMAIL not in logged and "Failing row" not in logged  # ... and without the row
    assert not any(r.exc_info for r in caplog.records)

    env = {
        "DATABASE_URL": db_url,
        "STRIPE_SECRET_KEY": STRIPE_KEY,
        "STRIPE_API_BASE": stripe_api.url,
        "LOG_LEVEL": "ERROR",
    }
    listed = CliRunner().invoke(main, ["events", "list"], env=env, catch_exceptions=False)
    assert PAYMENT["id"] in listed.output and "CheckViolation" in listed.output
    assert EMAIL not in listed.output and "Failing row" not in listed.output


def test_a_signature_dated_beyond_the_tolerance_in_the_future_gets_400(web: LiveServer, conn) -> None:
    ahead = web.webhook(ORDINARY, timestamp=int(time.time()) + 3600)
    assert ahead.status_code == 400
    assert "in the future" in ahead.json()["reason"] and "tolerance" in ahead.json()["reason"]
    assert _statuses(conn) == {}
    # A clock a little ahead of ours is within the tolerance, as it is behind.
    assert web.webhook(ORDINARY, timestamp=int(time.time()) + 60).status_code == 200


@pytest.mark.parametrize(("ahead", "accepted"), [(299, True), (300, True), (301, False)])
def test_future_tolerance_boundary(ahead: int, accepted: bool) -> None:
    body = json.dumps(ORDINARY).encode()
    signed_at = 1_790_000_000
    header = stripe_signature(body, WEBHOOK_SECRET, timestamp=signed_at)
    with freeze_time(time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(signed_at - ahead))):
        if accepted:
            verify(body, header, (WEBHOOK_SECRET,), 300)
        else:
            with pytest.raises(BadEvent, match="in the future"):
                verify(body, header, (WEBHOOK_SECRET,), 300)


def test_a_future_signature_by_the_wrong_secret_says_the_signature_is_wrong() -> None:
    body = json.dumps(ORDINARY).encode()
    header = stripe_signature(body, "whsec_other", timestamp=int(time.time()) + 3600)
    with pytest.raises(BadEvent, match="No signatures found matching"):
        verify(body, header, (WEBHOOK_SECRET,), 300)
