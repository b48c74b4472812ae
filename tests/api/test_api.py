"""The operator API over real HTTP: keys, scopes, reads, requests that people approve, idempotency, the rate
limit, errors as problems; every answer is checked against openapi.json first (tests/api/conftest.py)."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import psycopg
from openapi_spec_validator import validate
from support import refunds_created, wait_until

from api.openapi import document
from domain.clock import utcnow
from domain.ratelimit import RateLimit
from messages import ids
from services import api_keys

AGENT, MANAGER = "U0SUPPORT1", "U0MANAGER1"
PROBLEM = "application/problem+json"


def _problem(resp, status: int, slug: str) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"].startswith(PROBLEM)
    body = resp.json()
    assert body["type"] == f"urn:refund-desk:problem:{slug}" and body["status"] == status
    return body


def test_openapi_json_is_a_valid_openapi_3_1_document(api) -> None:
    served = api.get("/openapi.json").json()
    assert served["openapi"] == "3.1.0" and served == json.loads(json.dumps(document()))
    validate(served)
    operations = {(m, p) for p, item in served["paths"].items() for m in item}
    assert operations == {
        ("get", "/api/v1/openapi.json"),
        ("get", "/api/v1/payments/{id}"),
        ("get", "/api/v1/refund-requests"),
        ("post", "/api/v1/refund-requests"),
        ("get", "/api/v1/refund-requests/{number}"),
        ("get", "/api/v1/refunds"),
        ("get", "/api/v1/disputes"),
    }


def test_no_key_a_wrong_key_and_a_revoked_key_are_401(api) -> None:
    body = _problem(api.get("/refund-requests"), 401, "unauthorized")
    assert "Bearer" in body["detail"]
    assert api.get("/refund-requests").headers["WWW-Authenticate"].startswith("Bearer")
    _problem(api.get("/refund-requests", "rdk_not-a-key"), 401, "unauthorized")
    _problem(api.get("/refund-requests", headers={"Authorization": "Basic dXNlcjpwYXNz"}), 401, "unauthorized")
    key = api.key("helpdesk", "read")
    assert api.get("/refund-requests", key).status_code == 200
    assert api_keys.revoke(api.web.deps.pool, "helpdesk", actor="test", now=utcnow()) is not None
    _problem(api.get("/refund-requests", key), 401, "unauthorized")


def test_a_read_only_key_cannot_file_a_request_and_a_request_only_key_cannot_read(api, stripe_api) -> None:
    pi = stripe_api.add_payment(5000, "usd")["payment_intent"]["id"]
    reader, filer = api.key("reporting", "read"), api.key("filer", "request")
    body = _problem(api.post("/refund-requests", reader, json={"payment": pi, "amount": "5"}), 403, "forbidden")
    assert "request" in body["detail"]
    _problem(api.get(f"/payments/{pi}", filer), 403, "forbidden")
    _problem(api.get("/refund-requests", filer), 403, "forbidden")


def test_a_request_by_key_waits_in_the_approvals_channel_until_a_person_approves_it(api, stripe_api, conn) -> None:
    pi = stripe_api.add_payment(12000, "usd", email="jenny@example.com")["payment_intent"]["id"]
    key = api.key("crm")
    resp = api.post(
        "/refund-requests", key, json={"payment": pi, "amount": "25.50", "reason": "duplicate", "note": "dup"}
    )
    assert resp.status_code == 201, resp.text
    filed = resp.json()
    number = filed["number"]
    assert resp.headers["Location"] == f"/api/v1/refund-requests/{number}"
    assert (filed["status"], filed["requested_by"], filed["requested_via"]) == ("pending", "api:crm", "api")
    assert filed["amount"] == {"value": "25.50", "minor": 2550, "currency": "usd"}
    assert filed["approvals_needed"] >= 1

    api.web.deliver()
    [message] = [m for m in api.web.slack.messages["C0APPROVALS"] if f"Refund request #{number}" in m["text"]]
    shown = json.dumps(message, ensure_ascii=False)
    assert "API key `crm`" in shown and ids.APPROVE_REQUEST in shown
    assert "api:crm" not in api.web.slack.messages, "no DM to a key"
    assert refunds_created(stripe_api) == []
    audit = conn.execute(
        "SELECT actor, surface, action FROM audit_log WHERE subject = %s ORDER BY id", (f"request:{number}",)
    ).fetchall()
    assert audit == [("api:crm", "api", "request.created")]

    api.web.click(ids.APPROVE_REQUEST, str(number), user=MANAGER)
    wait_until(lambda: len(refunds_created(stripe_api)) == 1, timeout=15, what="the refund after approval")
    [created] = refunds_created(stripe_api)
    assert created["params"]["amount"] == "2550"

    def status() -> str:
        return api.get(f"/refund-requests/{number}", key).json()["status"]

    wait_until(lambda: status() == "sent", timeout=15, what="the request being sent")
    detail = api.get(f"/refund-requests/{number}", key).json()
    assert [s["step"] for s in detail["timeline"]][:3] == ["asked", "approved", "sent"]
    assert detail["timeline"][0]["actor"] == "api:crm" and detail["timeline"][1]["actor"] == MANAGER
    assert detail["decided_by"] == MANAGER


def test_even_a_small_request_by_key_needs_a_person(api, stripe_api) -> None:
    pi = stripe_api.add_payment(500, "usd")["payment_intent"]["id"]  # far below the approval threshold
    resp = api.post("/refund-requests", api.key("crm"), json={"payment": pi})
    assert resp.status_code == 201 and resp.json()["status"] == "pending" and resp.json()["amount"]["minor"] == 500


def test_twenty_concurrent_posts_with_one_idempotency_key_file_one_request(api, stripe_api, conn) -> None:
    pi = stripe_api.add_payment(9000, "usd")["payment_intent"]["id"]
    key = api.key("crm")
    body = {"payment": pi, "amount": "10", "reason": "duplicate"}
    headers = {"Idempotency-Key": "order-1234-refund"}
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: api.post("/refund-requests", key, json=body, headers=headers), range(20)))
    assert [a.status_code for a in answers] == [201] * 20
    assert len({a.json()["number"] for a in answers}) == 1
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 19
    conn.rollback()
    assert conn.execute("SELECT count(*) FROM refund_requests").fetchone() == (1,)
    again = api.post("/refund-requests", key, json=body, headers=headers)
    assert again.status_code == 201 and again.json() == answers[0].json()
    other = api.post("/refund-requests", key, json={**body, "amount": "11"}, headers=headers)
    _problem(other, 409, "idempotency-key-reused")
    # Another key's Idempotency-Key of the same name is its own.
    second = api.post("/refund-requests", api.key("helpdesk"), json=body, headers=headers)
    _problem(second, 409, "already-pending")


def test_a_refused_request_names_the_field_and_its_answer_is_kept(api, stripe_api) -> None:
    pi = stripe_api.add_payment(1000, "usd")["payment_intent"]["id"]
    key = api.key("crm")
    too_much = api.post(
        "/refund-requests", key, json={"payment": pi, "amount": "10.01"}, headers={"Idempotency-Key": "a"}
    )
    assert _problem(too_much, 422, "request-refused")["errors"][0]["field"] == "amount"
    again = api.post("/refund-requests", key, json={"payment": pi, "amount": "10.01"}, headers={"Idempotency-Key": "a"})
    assert again.json() == too_much.json() and again.headers["Idempotent-Replayed"] == "true"
    cases = [
        ({"payment": "cus_123456"}, "payment"),
        ({"payment": pi, "amount": 5}, "amount"),
        ({"payment": pi, "amount": "1,50"}, "amount"),
        ({"payment": pi, "reason": "because"}, "reason"),
        ({"payment": pi, "note": "x" * 2001}, "note"),
        ({"payment": pi, "colour": "red"}, "colour"),
        ([pi], "body"),
    ]
    for body, field in cases:
        assert (
            _problem(api.post("/refund-requests", key, json=body), 422, "validation-failed")["errors"][0]["field"]
            == field
        )
    _problem(
        api.post("/refund-requests", key, data="{nope", headers={"Content-Type": "application/json"}),
        400,
        "bad-request",
    )
    _problem(
        api.post("/refund-requests", key, data="payment=pi_1", headers={"Content-Type": "text/plain"}),
        415,
        "unsupported-media-type",
    )
    _problem(api.post("/refund-requests", key, json={"payment": "pi_UNKNOWN123"}), 404, "not-found")


def test_over_the_rate_limit_is_429_with_retry_after(make_api) -> None:
    api = make_api(api_rate_limit=RateLimit(rate=0.5, burst=3))
    key, other = api.key("crm", "read"), api.key("helpdesk", "read")
    assert [api.get("/refund-requests", key).status_code for _ in range(3)] == [200, 200, 200]
    limited = api.get("/refund-requests", key)
    _problem(limited, 429, "rate-limited")
    assert 1 <= int(limited.headers["Retry-After"]) <= 2
    assert api.get("/refund-requests", other).status_code == 200, "each key has its own bucket"


def test_lookups_take_every_id_kind(api, stripe_api) -> None:
    seeded = stripe_api.add_payment(5000, "usd", email="jenny@example.com")
    pi, charge = seeded["payment_intent"]["id"], seeded["charge"]["id"]
    key = api.key("crm", "read")
    payment = api.get(f"/payments/{pi}", key).json()  # from Stripe the first time, then from our records
    assert payment["id"] == pi and payment["customer"]["email"] == "jenny@example.com"
    assert payment["refundable"] == {"value": "50.00", "minor": 5000, "currency": "usd"}
    assert api.get(f"/payments/{charge}", key).json()["id"] == pi
    _problem(api.get("/payments/pi_NOSUCHTHING1", key), 404, "not-found")
    _problem(api.get("/payments/cus_123456", key), 404, "not-found")
    _problem(api.get("/refund-requests/999", key), 404, "not-found")
    _problem(api.get("/refund-requests/abc", key), 404, "not-found")
    # Outside the document, errors are problems too.
    _problem(api.http.get(f"{api.web.url}/api/v1/nothing-here", timeout=10), 404, "not-found")
    wrong = api.http.delete(f"{api.web.url}/api/v1/refunds", timeout=10)
    _problem(wrong, 405, "method-not-allowed")
    assert "GET" in wrong.headers["Allow"]


INSERT = """
INSERT INTO refund_requests (payment_id, amount, currency, status, requested_by, requested_via, created_at,
                             updated_at, expires_at)
VALUES (%(payment)s, 100, 'usd', %(status)s, %(by)s, 'slash_command', %(at)s, %(at)s, %(at)s + interval '7 days')
"""


def test_lists_filter_and_page_stably_while_requests_arrive(api, db_url: str) -> None:
    now = utcnow()
    with psycopg.connect(db_url, autocommit=True) as c:
        for i in range(130):
            c.execute(
                INSERT,
                {
                    "payment": f"pi_LIST{i:08d}",
                    "status": "pending" if i % 2 else "expired",
                    "by": AGENT if i % 3 else "U0OTHER001",
                    "at": now - timedelta(hours=130 - i),
                },
            )
    key = api.key("reporting", "read")
    stop = threading.Event()

    def arrive() -> None:
        with psycopg.connect(db_url, autocommit=True) as c:
            n = 0
            while not stop.is_set():
                n += 1
                c.execute(INSERT, {"payment": f"pi_NEW{n:08d}", "status": "expired", "by": AGENT, "at": utcnow()})
                stop.wait(0.01)

    params = {"status": "expired", "requested_by": AGENT, "until": now.isoformat(), "limit": "7"}
    seen: list[int] = []
    arriving = threading.Thread(target=arrive)
    arriving.start()
    try:
        page = api.get("/refund-requests", key, params=params).json()
        while True:
            seen += [r["number"] for r in page["data"]]
            assert all(r["status"] == "expired" and r["requested_by"] == AGENT for r in page["data"])
            if not page["has_more"]:
                break
            page = api.get("/refund-requests", key, params={**params, "cursor": page["next_cursor"]}).json()
    finally:
        stop.set()
        arriving.join(10)
    expected = [i for i in range(130) if i % 2 == 0 and i % 3]
    assert len(seen) == len(set(seen)) == len(expected)
    assert seen == sorted(seen, reverse=True)
    since = api.get(
        "/refund-requests", key, params={"since": (now - timedelta(hours=2, minutes=30)).isoformat()}
    ).json()
    assert len([r for r in since["data"] if r["payment"].startswith("pi_LIST")]) == 2
    assert (
        api.get("/refund-requests", key, params={"status": "open", "limit": "200"}).json()["data"][0]["status"]
        == "pending"
    )
    for bad in ({"limit": "0"}, {"limit": "201"}, {"status": "nope"}, {"since": "yesterday"}, {"cursor": "x"}):
        field = next(iter(bad))
        assert (
            _problem(api.get("/refund-requests", key, params=bad), 422, "validation-failed")["errors"][0]["field"]
            == field
        )


def test_refunds_and_disputes_lists(api, stripe_api, conn) -> None:
    conn.execute(
        "INSERT INTO disputes (id, charge_id, amount, currency, status, reason, evidence_due_by, owner,"
        " stripe_created, observed_at) VALUES"
        " ('dp_LATER00001', 'ch_1', 100, 'usd', 'needs_response', 'fraudulent', now() + interval '9 days', NULL,"
        "  now(), now()),"
        " ('dp_SOONER0001', 'ch_2', 100, 'usd', 'needs_response', 'fraudulent', now() + interval '2 days',"
        "  'U0ONCALL01', now(), now()),"
        " ('dp_WON0000001', 'ch_3', 100, 'usd', 'won', 'fraudulent', NULL, NULL, now(), now())"
    )
    conn.execute(
        "INSERT INTO refunds (id, charge_id, amount, currency, status, stripe_created, observed_at) VALUES"
        " ('re_OLD0000001', 'ch_1', 100, 'usd', 'succeeded', now() - interval '1 day', now()),"
        " ('re_NEW0000001', 'ch_2', 100, 'jpy', 'pending', now(), now())"
    )
    conn.commit()
    key = api.key("reporting", "read")
    disputes = api.get("/disputes", key, params={"status": "open"}).json()["data"]
    assert [d["id"] for d in disputes] == ["dp_SOONER0001", "dp_LATER00001"]
    assert [d["id"] for d in api.get("/disputes", key, params={"owner": "U0ONCALL01"}).json()["data"]] == [
        "dp_SOONER0001"
    ]
    paged = api.get("/disputes", key, params={"limit": "1"}).json()
    rest = api.get("/disputes", key, params={"limit": "5", "cursor": paged["next_cursor"]}).json()
    assert [d["id"] for d in paged["data"] + rest["data"]] == ["dp_SOONER0001", "dp_LATER00001", "dp_WON0000001"]
    refunds = api.get("/refunds", key).json()["data"]
    assert [r["id"] for r in refunds] == ["re_NEW0000001", "re_OLD0000001"]
    assert refunds[0]["amount"] == {"value": "100", "minor": 100, "currency": "jpy"}
    assert [r["id"] for r in api.get("/refunds", key, params={"status": "succeeded"}).json()["data"]] == [
        "re_OLD0000001"
    ]


def test_someone_outside_viewers_gets_no_payment_details_from_the_api(make_api, stripe_api) -> None:
    api = make_api(viewers=frozenset({"U0VIEWER1"}))
    pi = stripe_api.add_payment(5000, "usd", email="secret@example.com")["payment_intent"]["id"]
    # A person has no way in but a key: without one, nothing; a key that may only file requests reads nothing.
    for resp in (
        api.get(f"/payments/{pi}"),
        api.get(f"/payments/{pi}", api.key("filer", "request")),
        api.get("/refund-requests", "rdk_guessed"),
    ):
        assert resp.status_code in {401, 403} and "secret@example.com" not in resp.text and pi not in resp.text
