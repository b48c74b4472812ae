"""The Stripe stand-in, driven through the real stripe SDK (StripeClient, v1 services)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import stripe

from standins.stripe_api import StripeStandIn, format_money, parse_form

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stripe"
KEY = "sk_test_standin"

# Keys of Stripe's sample objects (openapi fixtures3) that the stand-in leaves out on purpose.
DELIBERATELY_OMITTED: dict[str, dict[str, str]] = {
    "charge": {
        "refunds": "not embedded since API 2022-11-15; served only with expand[]=refunds",
    },
}
# Key fields whose JSON type must match Stripe's sample (when both are non-null).
TYPED_FIELDS = {
    "payment_intent": [
        "amount",
        "amount_received",
        "currency",
        "status",
        "created",
        "livemode",
        "metadata",
        "payment_method_types",
        "capture_method",
    ],
    "charge": [
        "amount",
        "amount_captured",
        "amount_refunded",
        "captured",
        "currency",
        "paid",
        "refunded",
        "disputed",
        "status",
        "billing_details",
        "payment_method_details",
        "outcome",
        "balance_transaction",
        "created",
    ],
    "refund": [
        "amount",
        "charge",
        "currency",
        "status",
        "created",
        "metadata",
        "balance_transaction",
        "destination_details",
    ],
    "dispute": [
        "amount",
        "charge",
        "currency",
        "status",
        "reason",
        "evidence",
        "evidence_details",
        "balance_transactions",
        "is_charge_refundable",
        "created",
    ],
    "balance_transaction": [
        "amount",
        "fee",
        "net",
        "fee_details",
        "currency",
        "type",
        "available_on",
        "source",
        "status",
        "reporting_category",
    ],
    "event": ["api_version", "created", "data", "livemode", "pending_webhooks", "request", "type"],
}


@pytest.fixture
def standin() -> Iterator[StripeStandIn]:
    with StripeStandIn() as s:
        yield s


def make_client(s: StripeStandIn, key: str = KEY, *, retries: int = 2, timeout: float = 2) -> stripe.StripeClient:
    return stripe.StripeClient(
        key,
        base_addresses={"api": s.url},
        max_network_retries=retries,
        http_client=stripe.RequestsClient(timeout=timeout),
    )


@pytest.fixture
def client(standin: StripeStandIn) -> Iterator[stripe.StripeClient]:
    c = make_client(standin)
    yield c
    c._requestor._get_http_client().close()


def close(c: stripe.StripeClient) -> None:
    c._requestor._get_http_client().close()


def refunds_of(s: StripeStandIn, charge_id: str) -> list[dict[str, Any]]:
    with s._lock:
        return [o for o in s._objects.values() if o["object"] == "refund" and o["charge"] == charge_id]


# --------------------------------------------------------------------------- wire format


def test_parse_form_bracket_notation() -> None:
    pairs = [
        ("metadata[request_id]", "r1"),
        ("expand[]", "a"),
        ("expand[]", "b"),
        ("created[gte]", "1"),
        ("items[0][price]", "p"),
        ("items[1][price]", "q"),
        ("metadata[0]", "digit-key"),
        ("amount", "100"),
    ]
    assert parse_form(pairs) == {
        "metadata": {"request_id": "r1", "0": "digit-key"},
        "expand": ["a", "b"],
        "created": {"gte": "1"},
        "items": [{"price": "p"}, {"price": "q"}],
        "amount": "100",
    }
    assert parse_form([("expand[0]", "x"), ("expand[1]", "y")]) == {"expand": ["x", "y"]}
    assert format_money(1234, "usd") == "$12.34"
    assert format_money(500, "jpy") == "¥500"


def test_sdk_encoding_is_parsed(standin: StripeStandIn, client: stripe.StripeClient) -> None:
    pay = standin.add_payment(1000)
    client.v1.refunds.create(
        params={
            "charge": pay["charge"]["id"],
            "amount": 100,
            "metadata": {"request_id": "r1"},
            "expand": ["charge", "balance_transaction"],
        },
    )
    client.v1.events.list(params={"created": {"gte": 1}, "types": ["refund.created"]})
    post, get = standin.requests[-2:]
    assert post["params"] == {
        "charge": pay["charge"]["id"],
        "amount": "100",
        "metadata": {"request_id": "r1"},
        "expand": ["charge", "balance_transaction"],
    }
    assert get["params"] == {"created": {"gte": "1"}, "types": ["refund.created"]}
    assert post["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert post["headers"]["idempotency-key"]  # the SDK always sends one on POST


# --------------------------------------------------------------------------- shapes


def test_shapes_match_stripe_samples(standin: StripeStandIn, client: stripe.StripeClient) -> None:
    samples = json.loads((FIXTURES / "openapi-fixtures3.json").read_text())["resources"]
    pay = standin.add_payment(2500, description="Order 42")
    charge_id = pay["charge"]["id"]
    refund = client.v1.refunds.create(params={"charge": charge_id, "amount": 500})
    other = standin.add_payment(900)
    dispute = standin.add_dispute(other["charge"]["id"])

    def get(path: str) -> dict[str, Any]:
        return json.loads(client.raw_request("get", path).body)

    ours = {
        "payment_intent": get(f"/v1/payment_intents/{pay['payment_intent']['id']}"),
        "charge": get(f"/v1/charges/{charge_id}"),
        "refund": get(f"/v1/refunds/{refund.id}"),
        "dispute": get(f"/v1/disputes/{dispute['id']}"),
        "balance_transaction": get(f"/v1/balance_transactions/{pay['charge']['balance_transaction']}"),
        "event": get(f"/v1/events/{standin.events[-1]['id']}"),
    }
    for name, obj in ours.items():
        sample = samples[name]
        assert obj["object"] == name
        omitted = set(DELIBERATELY_OMITTED.get(name, {}))
        missing = set(sample) - set(obj) - omitted
        assert not missing, f"{name} lacks {sorted(missing)}"
        assert not omitted & set(obj), f"{name} carries {omitted & set(obj)}"
        for key in TYPED_FIELDS[name]:
            if sample[key] is not None and obj[key] is not None:
                assert type(obj[key]) is type(sample[key]), (name, key)
    charge, pi = ours["charge"], ours["payment_intent"]
    assert pi["latest_charge"] == charge_id and charge["payment_intent"] == pi["id"]
    assert pi["amount_received"] == charge["amount_captured"] == 2500
    assert charge["amount_refunded"] == 500 and charge["refunded"] is False
    assert charge["billing_details"]["email"] == charge["receipt_email"] == "jenny@example.com"
    card = charge["payment_method_details"]["card"]
    assert (card["brand"], card["last4"], card["funding"]) == ("visa", "4242", "credit")
    assert isinstance(card["exp_month"], int) and isinstance(card["exp_year"], int)
    txn = ours["balance_transaction"]
    assert txn["source"] == charge_id and txn["net"] == txn["amount"] - txn["fee"]
    assert ours["refund"]["status"] == "pending" and ours["refund"]["balance_transaction"]
    assert ours["event"]["type"] == "charge.dispute.funds_withdrawn"


def test_expand_including_dotted_paths(standin: StripeStandIn, client: stripe.StripeClient) -> None:
    pay = standin.add_payment(1500)
    pi = client.v1.payment_intents.retrieve(
        pay["payment_intent"]["id"],
        params={"expand": ["latest_charge.balance_transaction", "customer"]},
    )
    assert pi.latest_charge.object == "charge"
    assert pi.latest_charge.balance_transaction.amount == 1500
    assert pi.customer is None
    charge = client.v1.charges.retrieve(pay["charge"]["id"], params={"expand": ["payment_intent"]})
    assert charge.payment_intent.id == pi.id
    refund = client.v1.refunds.create(params={"payment_intent": pi.id, "expand": ["charge"]})
    assert refund.charge.amount_refunded == 1500 and refund.charge.refunded is True
    listed = client.v1.refunds.list(params={"payment_intent": pi.id, "expand": ["data.balance_transaction"]})
    assert listed.data[0].balance_transaction.amount == -1500
    with pytest.raises(stripe.InvalidRequestError) as bad:
        client.v1.charges.retrieve(pay["charge"]["id"], params={"expand": ["amount"]})
    assert bad.value.param == "expand"


# --------------------------------------------------------------------------- errors


def test_authentication_errors(standin: StripeStandIn) -> None:
    bad = make_client(standin, "sk_test_nopeabcd")
    with pytest.raises(stripe.AuthenticationError) as exc:
        bad.v1.charges.list()
    close(bad)
    assert exc.value.http_status == 401
    assert exc.value.json_body == {
        "error": {"message": "Invalid API Key provided: sk_test_****abcd", "type": "invalid_request_error"}
    }
    assert exc.value.headers["Request-Id"].startswith("req_")


def test_not_found_and_unknown_route(standin: StripeStandIn, client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.payment_intents.retrieve("pi_missing")
    err = exc.value
    assert (err.http_status, err.code, err.param) == (404, "resource_missing", "id")
    assert err.user_message == "No such payment_intent: 'pi_missing'"
    assert err.json_body["error"]["doc_url"].endswith("/resource-missing")
    assert err.json_body["error"]["request_log_url"].startswith("https://dashboard.stripe.com/")
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.raw_request("get", "/v1/nope")
    assert exc.value.http_status == 404
    assert exc.value.user_message.startswith("Unrecognized request URL (GET: /v1/nope)")
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.refunds.list(params={"bogus": "1"})  # type: ignore[typeddict-unknown-key]
    assert (exc.value.code, exc.value.param) == ("parameter_unknown", "bogus")


def test_every_response_has_request_id_and_version(standin: StripeStandIn, client: stripe.StripeClient) -> None:
    standin.fail_next(1, status=503, path_prefix="/v1/charges")
    resp = client.raw_request("get", "/v1/charges")  # 503 retried, then 200
    assert resp.headers["Stripe-Version"] == "2026-10-28.endive"
    assert resp.headers["Request-Id"].startswith("req_")
    assert [r["status"] for r in standin.requests] == [503, 200]


def test_server_error_is_retried_with_the_same_idempotency_key(
    standin: StripeStandIn, client: stripe.StripeClient
) -> None:
    pay = standin.add_payment(4000)
    standin.fail_next(1, status=500, path_prefix="/v1/refunds")
    refund = client.v1.refunds.create(params={"charge": pay["charge"]["id"], "amount": 1000})
    first, second = standin.requests[-2:]
    assert (first["status"], second["status"]) == (500, 200)
    assert first["headers"]["idempotency-key"] == second["headers"]["idempotency-key"]
    assert [r["id"] for r in refunds_of(standin, pay["charge"]["id"])] == [refund.id]


def test_rate_limit(standin: StripeStandIn, client: stripe.StripeClient) -> None:
    standin.fail_next(1, status=429, retry_after=1)
    with pytest.raises(stripe.RateLimitError) as exc:
        client.v1.charges.list()
    assert exc.value.json_body["error"]["code"] == "rate_limit"
    assert exc.value.json_body["error"]["type"] == "rate_limit_error"
    assert exc.value.headers["Retry-After"] == "1"
    assert standin.requests[-1]["status"] == 429
    assert standin.requests[-1]["response_headers"]["Retry-After"] == "1"
    assert client.v1.charges.list().data == []  # the fault was used up


def test_hang_times_the_client_out(standin: StripeStandIn) -> None:
    impatient = make_client(standin, retries=0, timeout=0.3)
    standin.hang_next(1, seconds=5, path_prefix="/v1/charges")
    started = time.monotonic()
    with pytest.raises(stripe.APIConnectionError):
        impatient.v1.charges.list()
    assert time.monotonic() - started < 2
    assert impatient.v1.charges.list().object == "list"
    close(impatient)


def test_stopped_server_refuses_then_restarts(standin: StripeStandIn) -> None:
    pay = standin.add_payment(700)
    c = make_client(standin, retries=0)
    standin.stop()
    with pytest.raises(stripe.APIConnectionError):
        c.v1.charges.retrieve(pay["charge"]["id"])
    standin.start()  # same port, same state: "Stripe is back"
    assert c.v1.charges.retrieve(pay["charge"]["id"]).amount == 700
    close(c)


# --------------------------------------------------------------------------- idempotency


def test_idempotent_replay_and_mismatch(standin: StripeStandIn, client: stripe.StripeClient) -> None:
    pay = standin.add_payment(5000)
    params = {"charge": pay["charge"]["id"], "amount": 1000}
    first = client.v1.refunds.create(params=params, options={"idempotency_key": "k"})
    again = client.v1.refunds.create(params=params, options={"idempotency_key": "k"})
    assert again.id == first.id
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert again.last_response.headers["Original-Request"] == first.last_response.request_id
    assert len(refunds_of(standin, pay["charge"]["id"])) == 1
    with pytest.raises(stripe.IdempotencyError) as exc:
        client.v1.refunds.create(params={**params, "amount": 999}, options={"idempotency_key": "k"})
    assert exc.value.user_message.startswith("Keys for idempotent requests can only be used")
    # Keys are scoped per connected account: the same key there is a new request.
    other = standin.add_payment(300, account="acct_1")
    scoped = client.v1.refunds.create(
        params={"charge": other["charge"]["id"]},
        options={"idempotency_key": "k", "stripe_account": "acct_1"},
    )
    assert scoped.id != first.id


def test_idempotency_saves_execution_errors_not_validation_errors(
    standin: StripeStandIn, client: stripe.StripeClient
) -> None:
    pay = standin.add_payment(1000)
    charge_id = pay["charge"]["id"]
    for _ in range(2):  # amount_too_large happens while executing: saved and replayed
        with pytest.raises(stripe.InvalidRequestError) as exc:
            client.v1.refunds.create(
                params={"charge": charge_id, "amount": 5000}, options={"idempotency_key": "too-much"}
            )
        assert exc.value.code == "amount_too_large"
    assert standin.requests[-1]["idempotent_replayed"] is True
    with pytest.raises(stripe.InvalidRequestError) as exc:  # validation: nothing saved
        client.v1.refunds.create(params={"charge": charge_id, "reason": "bored"}, options={"idempotency_key": "v"})
    assert exc.value.param == "reason"
    ok = client.v1.refunds.create(params={"charge": charge_id, "reason": "duplicate"}, options={"idempotency_key": "v"})
    assert ok.reason == "duplicate"


def test_concurrent_requests_with_one_key_create_one_refund(
    standin: StripeStandIn, client: stripe.StripeClient
) -> None:
    pay = standin.add_payment(5000)
    params = {"charge": pay["charge"]["id"], "amount": 1200}
    standin.latency = 0.3  # keeps the first request in flight while the second arrives
    results: list[str] = []

    def create() -> None:
        c = make_client(standin)
        results.append(c.v1.refunds.create(params=params, options={"idempotency_key": "dup"}).id)
        close(c)

    worker = threading.Thread(target=create)
    worker.start()
    time.sleep(0.1)
    create()
    worker.join()
    standin.latency = 0
    assert len(set(results)) == 1 and len(results) == 2
    assert len(refunds_of(standin, pay["charge"]["id"])) == 1
    statuses = [r["status"] for r in standin.requests]
    assert 409 in statuses  # the SDK retried the conflict and got the replay
    assert any(r["idempotent_replayed"] for r in standin.requests)


# --------------------------------------------------------------------------- refunds


def test_partial_refunds_add_up_then_charge_is_fully_refunded(
    standin: StripeStandIn, client: stripe.StripeClient
) -> None:
    pay = standin.add_payment(5000)
    charge_id = pay["charge"]["id"]
    client.v1.refunds.create(params={"charge": charge_id, "amount": 3000})
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.refunds.create(params={"charge": charge_id, "amount": 2500})
    assert (exc.value.code, exc.value.param) == ("amount_too_large", "amount")
    assert exc.value.user_message == ("Refund amount ($25.00) is greater than unrefunded amount on charge ($20.00)")
    rest = client.v1.refunds.create(params={"payment_intent": pay["payment_intent"]["id"]})
    assert rest.amount == 2000  # default: everything left
    charge = client.v1.charges.retrieve(charge_id)
    assert (charge.amount_refunded, charge.refunded) == (5000, True)
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.refunds.create(params={"charge": charge_id})
    assert exc.value.code == "charge_already_refunded"


@pytest.mark.parametrize(
    "code",
    [
        "balance_insufficient",
        "charge_disputed",
        "charge_already_refunded",
        "charge_expired_for_refund",
        "amount_too_large",
    ],
)
def test_refund_outcome_errors(standin: StripeStandIn, client: stripe.StripeClient, code: str) -> None:
    pay = standin.add_payment(1000)
    standin.refund_outcome_for_charge(pay["charge"]["id"], error_code=code)
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.refunds.create(params={"charge": pay["charge"]["id"]})
    assert exc.value.http_status == 400 and exc.value.code == code
    assert exc.value.user_message
    assert standin.object(pay["charge"]["id"])["amount_refunded"] == 0


def test_refund_validation(standin: StripeStandIn, client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.refunds.create(params={"charge": "ch_x"})
    err = exc.value
    assert (err.http_status, err.code, err.param) == (404, "resource_missing", "charge")
    assert err.user_message == "No such charge: 'ch_x'"
    failed = standin.add_payment(800, status="failed")
    uncaptured = standin.add_payment(800, captured=False)
    disputed = standin.add_payment(800)
    standin.add_dispute(disputed["charge"]["id"])
    for pay, code in [
        (failed, "charge_not_refundable"),
        (uncaptured, "charge_not_refundable"),
        (disputed, "charge_disputed"),
    ]:
        with pytest.raises(stripe.InvalidRequestError) as exc:
            client.v1.refunds.create(params={"charge": pay["charge"]["id"]})
        assert exc.value.code == code
    ok = standin.add_payment(800)
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.refunds.create(params={"charge": ok["charge"]["id"], "reason": "because"})
    assert exc.value.param == "reason"


def test_failed_payment_seed_is_consistent(standin: StripeStandIn) -> None:
    pay = standin.add_payment(1200, status="failed", last4="0002")
    pi, charge = pay["payment_intent"], pay["charge"]
    assert pi["status"] == "requires_payment_method" and pi["latest_charge"] == charge["id"]
    assert pi["last_payment_error"]["code"] == "card_declined"
    assert charge["failure_code"] == "card_declined" and charge["paid"] is False
    assert charge["outcome"]["type"] == "issuer_declined"
    assert charge["balance_transaction"] is None
    types = [e["type"] for e in standin.events]
    assert types == ["payment_intent.created", "charge.failed", "payment_intent.payment_failed"]
    legacy = standin.add_payment(300, payment_intent=False)
    assert legacy["payment_intent"] is None and legacy["charge"]["payment_intent"] is None


def test_settle_refund_and_events(standin: StripeStandIn, client: stripe.StripeClient) -> None:
    pay = standin.add_payment(5000)
    charge_id = pay["charge"]["id"]
    mark = len(standin.events)
    refund = client.v1.refunds.create(
        params={"charge": charge_id, "amount": 2000, "metadata": {"request_id": "r1"}},
        options={"idempotency_key": "idem-1"},
    )
    assert standin.object(charge_id)["amount_refunded"] == 2000
    failed = standin.settle_refund(refund.id, "failed", "expired_or_canceled_card")
    assert failed["failure_reason"] == "expired_or_canceled_card"
    assert failed["failure_balance_transaction"].startswith("txn_")
    assert standin.object(charge_id)["amount_refunded"] == 0  # the money came back
    events = standin.events[mark:]
    assert [e["type"] for e in events] == [
        "refund.created",
        "charge.refunded",
        "refund.updated",
        "refund.failed",
        "charge.refund.updated",
    ]
    created, refunded, updated = events[0], events[1], events[2]
    assert created["request"] == {"id": refund.last_response.request_id, "idempotency_key": "idem-1"}
    assert refunded["data"]["object"]["object"] == "charge"
    assert refunded["data"]["previous_attributes"] == {"amount_refunded": 0}
    assert updated["data"]["previous_attributes"]["status"] == "pending"
    assert [e["created"] for e in events] == sorted(e["created"] for e in events)
    listed = client.v1.events.list(params={"type": "refund.*", "limit": 2})
    assert [e.type for e in listed.data] == ["refund.failed", "refund.updated"]
    assert listed.has_more is True
    # Pending refunds can also be canceled over HTTP, which gives the amount back too.
    second = client.v1.refunds.create(params={"charge": charge_id, "amount": 500})
    canceled = client.v1.refunds.cancel(second.id)
    assert canceled.status == "canceled"
    assert standin.object(charge_id)["amount_refunded"] == 0
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.refunds.cancel(second.id)
    standin.refund_outcome_for_charge(charge_id, refund_status="succeeded")
    instant = client.v1.refunds.create(params={"charge": charge_id, "amount": 100})
    assert instant.status == "succeeded"


def test_list_pagination(standin: StripeStandIn, client: stripe.StripeClient) -> None:
    pay = standin.add_payment(1000)
    ids = [client.v1.refunds.create(params={"charge": pay["charge"]["id"], "amount": 100}).id for _ in range(5)]
    newest_first = ids[::-1]
    page = client.v1.refunds.list(params={"charge": pay["charge"]["id"], "limit": 2})
    assert [r.id for r in page.data] == newest_first[:2] and page.has_more
    assert page.url == "/v1/refunds"
    page = client.v1.refunds.list(params={"limit": 2, "starting_after": newest_first[1]})
    assert [r.id for r in page.data] == newest_first[2:4] and page.has_more
    page = client.v1.refunds.list(params={"limit": 10, "starting_after": newest_first[3]})
    assert [r.id for r in page.data] == newest_first[4:] and not page.has_more
    page = client.v1.refunds.list(params={"limit": 2, "ending_before": newest_first[4]})
    assert [r.id for r in page.data] == newest_first[2:4] and page.has_more
    # Backwards auto-paging walks towards newer objects, oldest of them first.
    assert [r.id for r in page.auto_paging_iter()] == newest_first[:4][::-1]
    assert client.v1.charges.list(params={"payment_intent": "pi_none"}).data == []
    future = int(time.time()) + 3600
    assert client.v1.events.list(params={"created": {"gte": future}}).data == []
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.refunds.list(params={"limit": 101})


def test_disputes(standin: StripeStandIn, client: stripe.StripeClient) -> None:
    pay = standin.add_payment(3000)
    dispute = standin.add_dispute(pay["charge"]["id"], reason="product_not_received")
    assert dispute["id"].startswith("dp_")
    assert standin.object(pay["charge"]["id"])["disputed"] is True
    got = client.v1.disputes.retrieve(dispute["id"], params={"expand": ["charge"]})
    assert got.charge.disputed is True and got.status == "needs_response"
    assert got.evidence_details.due_by > time.time() + 6 * 86400
    assert got.balance_transactions[0].fee == 1500
    listed = client.v1.disputes.list(params={"payment_intent": pay["payment_intent"]["id"]})
    assert [d.id for d in listed.data] == [dispute["id"]]
    closed = standin.update_dispute(dispute["id"], status="won")
    assert closed["status"] == "won"
    assert [e["type"] for e in standin.events[-4:]] == [
        "charge.dispute.created",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.closed",
        "charge.dispute.funds_reinstated",
    ]
    assert standin.events[-2]["data"]["previous_attributes"]["status"] == "needs_response"


def test_payment_intent_create_confirm(standin: StripeStandIn, client: stripe.StripeClient) -> None:
    pi = client.v1.payment_intents.create(
        params={
            "amount": 2000,
            "currency": "usd",
            "confirm": True,
            "payment_method": "pm_card_visa",
            "receipt_email": "a@example.com",
            "metadata": {"order": "7"},
        }
    )
    assert pi.status == "succeeded" and pi.amount_received == 2000
    assert client.v1.charges.retrieve(pi.latest_charge).receipt_email == "a@example.com"
    with pytest.raises(stripe.CardError) as exc:
        client.v1.payment_intents.create(
            params={"amount": 2000, "currency": "usd", "confirm": True, "payment_method": "pm_card_chargeDeclined"}
        )
    assert exc.value.code == "card_declined"
    assert exc.value.json_body["error"]["payment_intent"]["status"] == "requires_payment_method"


# --------------------------------------------------------------------------- connect


def test_connect_scoping(standin: StripeStandIn, client: stripe.StripeClient) -> None:
    pay = standin.add_payment(900, account="acct_1")
    charge_id = pay["charge"]["id"]
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.charges.retrieve(charge_id)
    assert exc.value.code == "resource_missing"
    acct = {"stripe_account": "acct_1"}
    assert client.v1.charges.retrieve(charge_id, options=acct).id == charge_id
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.charges.retrieve(charge_id, options={"stripe_account": "acct_2"})
    platform = standin.add_payment(100)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.charges.retrieve(platform["charge"]["id"], options=acct)
    refund = client.v1.refunds.create(params={"charge": charge_id}, options=acct)
    for event in standin.events:  # only connected-account events carry `account`
        owner = event["data"]["object"].get("charge") or event["data"]["object"]["id"]
        mine = owner in (charge_id, refund.id, pay["payment_intent"]["id"])
        assert event.get("account") == ("acct_1" if mine else None), event["type"]
    visible = client.v1.events.list(params={"type": "refund.created"}, options=acct)
    assert [e.data.object.id for e in visible.data] == [refund.id]
    assert client.v1.events.list(params={"type": "refund.created"}).data == []


# --------------------------------------------------------------------------- webhooks


class _Receiver(BaseHTTPRequestHandler):
    server: Any

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        with self.server.lock:
            self.server.got.append((body, dict(self.headers)))
            fail = self.server.fail_first > 0
            self.server.fail_first -= 1
        self.send_response(500 if fail else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def receiver() -> Iterator[Any]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.got, server.lock, server.fail_first = [], threading.Lock(), 1
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def test_webhooks_are_signed_ordered_and_retried(
    standin: StripeStandIn, client: stripe.StripeClient, receiver: Any
) -> None:
    secret = "whsec_test_secret"
    standin.deliver_webhooks(f"http://127.0.0.1:{receiver.server_address[1]}/hooks", secret)
    pay = standin.add_payment(2500)
    refund = client.v1.refunds.create(params={"charge": pay["charge"]["id"]})
    standin.settle_refund(refund.id)
    standin.flush_webhooks(timeout=5)
    expected = [e["id"] for e in standin.events]
    received = []
    for body, headers in receiver.got:
        assert headers["Content-Type"].startswith("application/json")
        stripe.WebhookSignature.verify_header(body, headers["Stripe-Signature"], secret, tolerance=300)
        received.append(json.loads(body)["id"])
    assert received[0] == received[1]  # first delivery answered 500, then retried
    assert received[1:] == expected
    assert [a["status"] for a in standin.webhook_attempts][:2] == [500, 200]
    event = stripe.Webhook.construct_event(receiver.got[-1][0], receiver.got[-1][1]["Stripe-Signature"], secret)
    assert event.type == "charge.refund.updated"
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(
            receiver.got[-1][0], receiver.got[-1][1]["Stripe-Signature"], "whsec_wrong", tolerance=300
        )


def test_raw_form_requests_without_sdk(standin: StripeStandIn) -> None:
    """expand[]=... style (what curl users and other SDKs send) parses like the SDK's [0]."""
    import http.client

    pay = standin.add_payment(600)
    conn = http.client.HTTPConnection("127.0.0.1", int(standin.url.rsplit(":", 1)[1]), timeout=2)
    query = urlencode([("expand[]", "latest_charge"), ("expand[]", "customer")])
    conn.request(
        "GET", f"/v1/payment_intents/{pay['payment_intent']['id']}?{query}", headers={"Authorization": f"Bearer {KEY}"}
    )
    resp = conn.getresponse()
    body = json.loads(resp.read())
    conn.close()
    assert resp.status == 200 and body["latest_charge"]["id"] == pay["charge"]["id"]
