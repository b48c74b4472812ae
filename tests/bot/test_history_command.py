"""`/refunds #42`, `mine`, `history` and `disputes` over signed HTTP: timelines, filters, paging, who may see."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from conftest import WEBHOOK_SECRET, LiveServer, replace_settings
from support import answered, refunds_created, wait_until

from domain.clock import utcnow
from messages import ids
from standins.slack_api import SlackStandIn
from standins.stripe_api import StripeStandIn
from store import requests as store

AGENT, AGENT2, MANAGER, OUTSIDER = "U0SUPPORT1", "U0SUPPORT2", "U0MANAGER1", "U0OUTSIDE1"

INSERT = """
INSERT INTO refund_requests (payment_id, amount, currency, status, requested_by, requested_via, approvals_needed,
                             decided_by, decided_at, reject_reason, created_at, updated_at, expires_at,
                             stripe_refund_id)
VALUES (%(payment)s, %(amount)s, 'usd', %(status)s, %(by)s, 'slash_command', 1,
        CASE WHEN %(status)s NOT IN ('pending', 'expired') THEN 'U0MANAGER1' END,
        CASE WHEN %(status)s NOT IN ('pending', 'expired') THEN %(at)s END,
        CASE WHEN %(status)s = 'rejected' THEN 'no' END, %(at)s, %(at)s, %(at)s + interval '7 days',
        CASE WHEN %(status)s = 'succeeded' THEN 're_' || %(payment)s END)
RETURNING id
"""


@pytest.fixture
def desk(make_server_for, settings, slack: SlackStandIn, stripe_api: StripeStandIn) -> LiveServer:
    configured = replace_settings(settings, approvers=frozenset({"S0APPROVERS"}), viewers=None)
    web = make_server_for(configured, slack)
    stripe_api.deliver_webhooks(f"{web.url}/webhooks/stripe", WEBHOOK_SECRET)
    return web


def _text(answer: dict) -> str:
    return json.dumps(answer.get("blocks") or [], ensure_ascii=False) + answer.get("text", "")


def _number(said: str) -> int:
    return int(said.split("#")[1].split(":")[0])


def _insert(conn, *, by: str = AGENT, status: str = "succeeded", age: timedelta = timedelta(0), n: int = 0) -> int:
    row = conn.execute(
        INSERT,
        {"payment": f"pi_HIST{n:010d}", "amount": 100 + n, "status": status, "by": by, "at": utcnow() - age},
    ).fetchone()
    conn.commit()
    return row[0]


def _next_value(answer: dict) -> str | None:
    for block in answer.get("blocks") or []:
        for element in block.get("elements") or []:
            if element.get("action_id") == ids.NEXT_PAGE:
                return element["value"]
    return None


def _listed(answer: dict) -> list[int]:
    numbers = []
    for block in answer.get("blocks") or []:
        text = (block.get("text") or {}).get("text", "")
        if text.startswith("*#"):
            numbers.append(int(text[2:].split("*")[0]))
    return numbers


def test_the_whole_life_of_a_request_approved_and_completed_by_webhook(
    desk: LiveServer, stripe_api: StripeStandIn, conn
) -> None:
    pi = stripe_api.add_payment(12000, "usd", email="jenny@example.com")["payment_intent"]["id"]
    said = answered(desk, desk.slash(f"request {pi} 25 duplicate charged twice", user_id=AGENT))["text"]
    number = _number(said)
    desk.deliver()  # the approval message exists, so the answer can link to it
    desk.click(ids.APPROVE_REQUEST, str(number), user=MANAGER)
    wait_until(lambda: bool(refunds_created(stripe_api)), timeout=15, what="the refund")
    wait_until(lambda: _stored(conn, number).stripe_refund_id is not None, timeout=15, what="Stripe's answer")
    refund_id = _stored(conn, number).stripe_refund_id
    stripe_api.settle_refund(refund_id, "succeeded")
    stripe_api.flush_webhooks()
    desk.drain()
    desk.deliver()
    assert _stored(conn, number).status == "succeeded"

    answer = answered(desk, desk.slash(f"#{number}", user_id=AGENT))
    shown = _text(answer)
    for expected in (
        f"Refund request #{number}",
        "$25.00",
        pi,
        "Duplicate payment",
        "charged twice",
        f"<@{AGENT}>",
        f"Approved by*\\n<@{MANAGER}>",
        refund_id,
        "jenny@example.com",
        "https://standin.slack.com/archives/C0APPROVALS/p",  # chat.getPermalink of the approval message
    ):
        assert expected in shown, expected
    timeline = shown.split("*Timeline*")[1]
    steps = ["Asked by", "Approved by", "Sent to Stripe", f"Refund `{refund_id}` pending", f"`{refund_id}` succeeded"]
    positions = [timeline.index(step) for step in steps]
    assert positions == sorted(positions), timeline
    assert desk.slack.calls_to("chat.getPermalink")


def test_a_rejected_request_shows_who_rejected_it_and_why(desk: LiveServer, stripe_api, conn) -> None:
    pi = stripe_api.add_payment(5000, "usd")["payment_intent"]["id"]
    number = _number(answered(desk, desk.slash(f"request {pi} all", user_id=AGENT))["text"])
    values = {ids.REJECT_REASON_BLOCK: {ids.INPUT: {"type": "plain_text_input", "value": "Customer got a credit"}}}
    assert desk.submit(ids.REJECT_MODAL, values, user=MANAGER, private_metadata=str(number)) == {}
    shown = _text(answered(desk, desk.slash(str(number), user_id=MANAGER)))
    assert "🚫 Rejected" in shown and "Customer got a credit" in shown
    timeline = shown.split("*Timeline*")[1]
    assert timeline.index("Asked by") < timeline.index(f"Rejected by <@{MANAGER}>: “Customer got a credit”")
    assert "Sent to Stripe" not in timeline


def test_an_unknown_request_is_said_plainly(desk: LiveServer) -> None:
    assert "There is no refund request #999" in answered(desk, desk.slash("#999"))["text"]


def _stored(conn, number: int):
    conn.rollback()
    return store.get(conn, number)


def test_mine_filters_by_status_and_period(desk: LiveServer, conn) -> None:
    recent_ok = [_insert(conn, status="succeeded", n=i) for i in range(3)]
    rejected = _insert(conn, status="rejected", n=10)
    old_ok = _insert(conn, status="succeeded", age=timedelta(days=40), n=11)
    _insert(conn, by=AGENT2, status="succeeded", n=12)  # someone else's

    everything = answered(desk, desk.slash("mine", user_id=AGENT))
    assert sorted(_listed(everything)) == sorted([*recent_ok, rejected, old_ok])
    assert "5 in all" in _text(everything)
    assert sorted(_listed(answered(desk, desk.slash("mine succeeded", user_id=AGENT)))) == sorted([*recent_ok, old_ok])
    recent = answered(desk, desk.slash("mine succeeded 30d", user_id=AGENT))
    assert sorted(_listed(recent)) == sorted(recent_ok) and "3 in all" in _text(recent)
    assert _listed(answered(desk, desk.slash("mine rejected", user_id=AGENT))) == [rejected]
    nothing = answered(desk, desk.slash("mine failed", user_id=AGENT))
    assert _listed(nothing) == [] and "0 in all" in _text(nothing)


def test_paging_through_120_requests_while_new_ones_arrive_loses_and_repeats_nothing(desk: LiveServer, conn) -> None:
    first = [_insert(conn, age=timedelta(minutes=200 - i), n=i) for i in range(120)]
    seen: list[int] = []
    answer = answered(desk, desk.slash("mine succeeded", user_id=AGENT))
    assert "120 in all" in _text(answer)
    pages = 0
    while True:
        pages += 1
        seen += _listed(answer)
        # Someone asks for more refunds between two pages.
        _insert(conn, n=1000 + pages)
        value = _next_value(answer)
        if value is None:
            break
        answer = answered(desk, desk.click(ids.NEXT_PAGE, value, user=AGENT, channel="C0SUPPORT1"))
    assert pages == 12
    assert len(seen) == len(set(seen)) == 120 and sorted(seen) == sorted(first)
    assert seen == sorted(seen, reverse=True)  # newest first


def test_history_is_for_approvers_and_filters_by_person(desk: LiveServer, conn) -> None:
    mine = [_insert(conn, n=i) for i in range(2)]
    theirs = _insert(conn, by=AGENT2, status="failed", n=5)
    assert "for approvers and admins" in answered(desk, desk.slash("history", user_id=AGENT))["text"]
    everyone = answered(desk, desk.slash("history", user_id=MANAGER))
    assert sorted(_listed(everyone)) == sorted([*mine, theirs]) and f"<@{AGENT2}>" in _text(everyone)
    assert _listed(answered(desk, desk.slash(f"history <@{AGENT2}|bob>", user_id=MANAGER))) == [theirs]
    assert _listed(answered(desk, desk.slash("history failed 7d", user_id=MANAGER))) == [theirs]


def test_a_forged_next_button_cannot_show_someone_elses_requests(desk: LiveServer, conn) -> None:
    for i in range(12):
        _insert(conn, by=AGENT2, n=i)
    page = answered(desk, desk.slash("history", user_id=MANAGER))
    value = _next_value(page)
    assert value is not None
    forged = json.loads(value) | {"k": "mine"}  # AGENT2's list, relabelled as "mine"
    answer = answered(desk, desk.click(ids.NEXT_PAGE, json.dumps(forged), user=AGENT, channel="C0SUPPORT1"))
    assert _listed(answer) == []
    assert "That button" in answered(desk, desk.click(ids.NEXT_PAGE, "{nope", user=AGENT))["text"]


def test_disputes_soonest_deadline_first_with_owner(desk: LiveServer, conn) -> None:
    now = utcnow()
    rows = [
        ("dp_LATER00001", "needs_response", now + timedelta(days=9), None),
        ("dp_SOONER0001", "needs_response", now + timedelta(days=2), "U0ONCALL01"),
        ("dp_NODEADLINE", "under_review", None, None),
        ("dp_CLOSED0001", "lost", now + timedelta(days=1), None),
    ]
    for dispute_id, status, due, owner in rows:
        conn.execute(
            "INSERT INTO disputes (id, charge_id, amount, currency, status, reason, evidence_due_by, owner,"
            " stripe_created, observed_at) VALUES (%s, 'ch_X', 4200, 'usd', %s, 'fraudulent', %s, %s, now(), now())",
            (dispute_id, status, due, owner),
        )
    conn.commit()
    answer = answered(desk, desk.slash("disputes", user_id=AGENT))
    shown = _text(answer)
    order = [shown.index(d) for d in ("dp_SOONER0001", "dp_LATER00001", "dp_NODEADLINE")]
    assert order == sorted(order) and "dp_CLOSED0001" not in shown and "3 in all" in shown
    assert "<@U0ONCALL01>" in shown and "nobody owns it" in shown and "$42.00" in shown and "fraudulent" in shown
    every = _text(answered(desk, desk.slash("disputes all", user_id=AGENT)))
    assert "dp_CLOSED0001" in every and every.index("dp_CLOSED0001") < every.index("dp_SOONER0001")


def test_someone_outside_viewers_gets_no_payment_details(
    make_server_for, settings, slack: SlackStandIn, stripe_api: StripeStandIn, conn
) -> None:
    web = make_server_for(
        replace_settings(settings, approvers=frozenset({"S0APPROVERS"}), viewers=frozenset({AGENT})), slack
    )
    pi = stripe_api.add_payment(5000, "usd", email="secret@example.com")["payment_intent"]["id"]
    assert answered(web, web.slash(pi, user_id=AGENT)).get("blocks"), "a viewer looks it up (from Stripe)"
    number = _insert(conn, by=OUTSIDER, n=1)
    for text in (pi, "pending", "mine", f"#{number}", "history", "disputes"):
        resp, key = web.slash(text, user_id=OUTSIDER)
        answer = resp.json()
        if "Looking up" in answer.get("text", ""):
            answer = answered(web, (resp, key))
        shown = _text(answer)
        assert "not allowed to see payment details" in shown, text
        assert "secret@example.com" not in shown and "pi_HIST" not in shown and "$" not in shown, text
    # An approver always sees what they decide, VIEWERS or not.
    assert web.slash(pi, user_id=MANAGER)[0].json().get("blocks")


def test_lists_keep_working_while_requests_are_added_concurrently(desk: LiveServer, conn, db_url: str) -> None:
    import psycopg

    for i in range(30):
        _insert(conn, n=i)
    stop = threading.Event()

    def add() -> None:
        with psycopg.connect(db_url, autocommit=True) as c:
            n = 5000
            while not stop.is_set():
                n += 1
                c.execute(
                    INSERT,
                    {"payment": f"pi_NEW{n:010d}", "amount": 1, "status": "pending", "by": AGENT, "at": utcnow()},
                )

    adder = threading.Thread(target=add)
    adder.start()
    try:
        answer = answered(desk, desk.slash("mine succeeded", user_id=AGENT))
        seen = _listed(answer)
        while (value := _next_value(answer)) is not None:
            answer = answered(desk, desk.click(ids.NEXT_PAGE, value, user=AGENT, channel="C0SUPPORT1"))
            seen += _listed(answer)
    finally:
        stop.set()
        adder.join(10)
    assert len(seen) == len(set(seen)) == 30
