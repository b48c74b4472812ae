"""Refund requests end to end over signed HTTP: asking, approving, exactly-once execution, failures,
recovery after a crash, rejection and expiry."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from conftest import WEBHOOK_SECRET, LiveServer, replace_settings
from freezegun import freeze_time
from support import answered, refunds_created, replies, wait_until

from domain.clock import utcnow
from messages import ids
from services import refund_requests
from standins.slack_api import SlackStandIn
from standins.stripe_api import StripeStandIn
from store import db
from store import requests as store

AGENT, MANAGER, MANAGER2 = "U0SUPPORT1", "U0MANAGER1", "U0MANAGER2"


@pytest.fixture
def desk(make_server_for, settings, slack: SlackStandIn, stripe_api: StripeStandIn) -> LiveServer:
    configured = replace_settings(
        settings,
        approvers=frozenset({"S0APPROVERS"}),
        approval_threshold={"usd": 500000, "jpy": 750000, "kwd": 1500000},
    )
    web = make_server_for(configured, slack)
    stripe_api.deliver_webhooks(f"{web.url}/webhooks/stripe", WEBHOOK_SECRET)
    return web


def _reply(web: LiveServer, resp_key: tuple, timeout: float = 15) -> str:
    """The text of the last thing said through a command's or click's response_url."""
    return answered(web, resp_key, timeout)["text"]


def _draft_id(web: LiveServer, resp_key: tuple) -> str:
    """The draft id behind the Confirm button of a refund that would run at once."""
    _reply(web, resp_key)
    answer = web.slack.responses(resp_key[1])[-1]
    buttons = [e for b in answer.get("blocks") or [] if b["type"] == "actions" for e in b["elements"]]
    [confirm] = [b for b in buttons if b["action_id"] == ids.CONFIRM_REFUND]
    return confirm["value"]


def _confirm(web: LiveServer, resp_key: tuple, user: str) -> str:
    """Click Confirm on a refund that would run at once; return what the click answered first."""
    draft = _draft_id(web, resp_key)
    return _reply(web, web.click(ids.CONFIRM_REFUND, draft, user=user, channel="C0SUPPORT1"))


def _request(web: LiveServer, conn, request_id: int):
    conn.rollback()
    return store.get(conn, request_id)


def _settle_everything(web: LiveServer, stripe_api: StripeStandIn) -> None:
    stripe_api.flush_webhooks()
    web.drain()
    web.deliver()


def _approval_message(web: LiveServer, request_id: int) -> dict:
    return next(m for m in web.slack.messages["C0APPROVALS"] if f"Refund request #{request_id}" in m["text"])


def test_ask_approve_refund_and_follow_to_success(desk: LiveServer, stripe_api: StripeStandIn, conn) -> None:
    pi = stripe_api.add_payment(12000, "usd", email="jenny@example.com")["payment_intent"]["id"]
    said = _reply(desk, desk.slash(f"request {pi} 25 duplicate charged twice at checkout", user_id=AGENT))
    assert "is waiting for an approver in <#C0APPROVALS>" in said
    request_id = int(said.split("#")[1].split(":")[0])
    desk.deliver()
    message = _approval_message(desk, request_id)
    shown = json.dumps(message, ensure_ascii=False)
    for expected in (
        "$25.00",
        "$95.00",
        "jenny@example.com",
        "Duplicate payment",
        f"<@{AGENT}>",
        "charged twice at checkout",
        ids.APPROVE_REQUEST,
        ids.REJECT_REQUEST,
    ):
        assert expected in shown, expected

    _, key = desk.click(ids.APPROVE_REQUEST, str(request_id), user=MANAGER)
    desk.slack.wait_for(lambda calls: bool(refunds_created(stripe_api)), timeout=15)
    [created] = refunds_created(stripe_api)
    key = created["headers"]["idempotency-key"]
    assert created["params"]["metadata"] == {"refund_desk_request": key, "refund_request_id": str(request_id)}
    assert created["params"]["amount"] == "2500" and created["params"]["reason"] == "duplicate"
    assert created["headers"]["idempotency-key"].startswith("refund-request-")
    wait_until(
        lambda: _request(desk, conn, request_id).stripe_refund_id is not None,
        timeout=15,
        what="recording Stripe's answer",
    )
    req = _request(desk, conn, request_id)
    assert (req.status, req.decided_by, req.approvals) == ("sent", MANAGER, [MANAGER])

    stripe_api.settle_refund(req.stripe_refund_id, "succeeded")
    _settle_everything(desk, stripe_api)
    assert _request(desk, conn, request_id).status == "succeeded"
    message = _approval_message(desk, request_id)
    assert ids.APPROVE_REQUEST not in json.dumps(message), "buttons are replaced by the decision"
    assert f"approved by <@{MANAGER}>" in json.dumps(message)
    thread = [m["text"] for m in replies(desk.slack.messages["C0APPROVALS"], message)]
    assert thread[0].startswith(f"👍 Approved by <@{MANAGER}>")
    assert any("succeeded" in t for t in thread)
    dms = [m["text"] for m in desk.slack.messages.get(AGENT, [])]
    assert any("approved by" in t for t in dms) and any("refunded ✅" in t for t in dms)
    actions = [
        r[0]
        for r in conn.execute("SELECT action FROM audit_log WHERE subject = %s ORDER BY id", (f"request:{request_id}",))
    ]
    assert actions == [
        "request.created",
        "request.approved",
        "refund.requested_from_stripe",
        "request.sent",
        "request.succeeded",
    ]


def test_fifty_concurrent_approvals_make_one_refund(desk: LiveServer, stripe_api: StripeStandIn, conn) -> None:
    pi = stripe_api.add_payment(10000, "usd")["payment_intent"]["id"]
    said = _reply(desk, desk.slash(f"request {pi} 40", user_id=AGENT))
    request_id = int(said.split("#")[1].split(":")[0])
    with ThreadPoolExecutor(50) as pool:
        clicks = list(
            pool.map(
                lambda i: desk.click(ids.APPROVE_REQUEST, str(request_id), user=MANAGER if i % 2 else MANAGER2),
                range(50),
            )
        )
    assert all(resp.status_code == 200 for resp, _ in clicks)
    click_keys = {key for _, key in clicks}
    desk.slack.wait_for(lambda calls: sum(1 for c in calls if c.key in click_keys) >= 49, timeout=30)
    told = [desk.slack.responses(key) for _, key in clicks]
    polite = [r[-1]["text"] for r in told if r]
    assert len(polite) == 49 and all("already decided" in t or "already approved" in t for t in polite), polite[:3]
    assert len(refunds_created(stripe_api)) == 1
    req = _request(desk, conn, request_id)
    assert req.status == "sent" and len(req.approvals) == 1
    desk.deliver()
    thread = replies(desk.slack.messages["C0APPROVALS"])
    assert sum("Approved by" in m["text"] for m in thread) == 1


def test_concurrent_requests_never_refund_more_than_captured(desk: LiveServer, stripe_api: StripeStandIn) -> None:
    # A manager's own requests within the threshold run at once, so each one moves money.
    seeded = stripe_api.add_payment(10000, "usd")
    pi, charge = seeded["payment_intent"]["id"], seeded["charge"]["id"]
    _reply(desk, desk.slash(pi, user_id=MANAGER))  # the payment is in the store
    with ThreadPoolExecutor(20) as pool:
        asks = list(pool.map(lambda _: desk.slash(f"request {pi} 30", user_id=MANAGER), range(20)))
        drafts = [_draft_id(desk, a) for a in asks]  # each shows $30.00 and waits for Confirm
        clicks = list(pool.map(lambda d: desk.click(ids.CONFIRM_REFUND, d, user=MANAGER), drafts))
    texts = [_reply(desk, c) for c in clicks]
    desk.slack.wait_for(lambda calls: len(refunds_created(stripe_api)) >= 3, timeout=30)
    refunded = stripe_api.object(charge)["amount_refunded"]
    assert refunded == 9000 and len(refunds_created(stripe_api)) == 3
    refused = [t for t in texts if t.startswith("Not refunded")]
    assert len(refused) == 17 and all("still refundable" in t or "fully refunded" in t for t in refused), refused[:3]


def test_nobody_approves_their_own_request_and_only_approvers_decide(desk: LiveServer, stripe_api, conn) -> None:
    pi = stripe_api.add_payment(900000, "usd")["payment_intent"]["id"]  # above the 5,000 USD threshold
    said = _reply(desk, desk.slash(f"request {pi} 6000", user_id=MANAGER))
    assert "waiting for an approver" in said
    request_id = int(said.split("#")[1].split(":")[0])
    assert "someone else has to approve it" in _reply(
        desk, desk.click(ids.APPROVE_REQUEST, str(request_id), user=MANAGER)
    )
    assert "Only approvers" in _reply(desk, desk.click(ids.APPROVE_REQUEST, str(request_id), user=AGENT))
    assert "someone else" in _reply(desk, desk.click(ids.REJECT_REQUEST, str(request_id), user=MANAGER))
    assert _request(desk, conn, request_id).status == "pending"
    assert refunds_created(stripe_api) == []


@pytest.mark.parametrize(
    ("currency", "amount_text", "status"),
    [
        ("jpy", "750000", "approved"),
        ("jpy", "750001", "pending"),
        ("kwd", "1500", "approved"),
        ("kwd", "1500.010", "pending"),
        ("usd", "5000", "approved"),
        ("usd", "5000.01", "pending"),
    ],
)
def test_threshold_boundaries(desk: LiveServer, stripe_api, conn, currency: str, amount_text: str, status: str) -> None:
    pi = stripe_api.add_payment(200000000, currency)["payment_intent"]["id"]
    asked = desk.slash(f"request {pi} {amount_text}", user_id=MANAGER)
    said = _reply(desk, asked)
    if status == "approved":
        assert "now? You are an approver" in said
        said = _confirm(desk, asked, MANAGER)
    request_id = int(said.split("#")[1].split(":")[0])
    expected_text = "runs at once" if status == "approved" else "waiting for an approver"
    assert expected_text in said
    req = _request(desk, conn, request_id)
    assert req.approvals_needed == (0 if status == "approved" else 1)


@pytest.mark.parametrize(
    ("code", "says"),
    [
        ("balance_insufficient", "balance"),
        ("charge_disputed", "charged back"),
        ("charge_already_refunded", "already been refunded"),
        ("charge_expired_for_refund", "too old"),
        ("bad_key", "rejected our API key"),
    ],
)
def test_stripe_refusals_end_the_request_failed_with_the_message(
    desk: LiveServer, stripe_api, conn, code: str, says: str
) -> None:
    seeded = stripe_api.add_payment(5000, "usd")
    pi = seeded["payment_intent"]["id"]
    said = _reply(desk, desk.slash(f"request {pi} 10", user_id=AGENT))
    request_id = int(said.split("#")[1].split(":")[0])
    if code == "bad_key":
        stripe_api.fail_next(
            1,
            status=401,
            path_prefix="/v1/refunds",
            error_type="invalid_request_error",
            message="Invalid API Key provided: sk_test_****ndin",
        )
    else:
        stripe_api.refund_outcome_for_charge(seeded["charge"]["id"], error_code=code)
    desk.click(ids.APPROVE_REQUEST, str(request_id), user=MANAGER)
    wait_until(lambda: _request(desk, conn, request_id).status == "failed", timeout=15, what="the request failing")
    req = _request(desk, conn, request_id)
    assert says.lower() in req.failure_message.lower()
    assert stripe_api.object(seeded["charge"]["id"])["amount_refunded"] == 0
    desk.deliver()
    thread = [m["text"] for m in replies(desk.slack.messages["C0APPROVALS"])]
    assert any(t.startswith("❌ Stripe refused the refund") for t in thread)


def test_crash_after_stripe_accepted_is_recovered_into_one_linked_refund(desk: LiveServer, stripe_api, conn) -> None:
    seeded = stripe_api.add_payment(5000, "usd")
    pi = seeded["payment_intent"]["id"]
    said = _reply(desk, desk.slash(f"request {pi} 12", user_id=AGENT))
    request_id = int(said.split("#")[1].split(":")[0])
    ctx = desk.deps.requests
    refund_requests.approve(ctx, request_id, user=MANAGER, roles=desk.deps.roles.roles(MANAGER), now=utcnow())
    with db.transaction(desk.deps.pool) as c:
        req = store.mark_sent(c, request_id, utcnow())
    # The process dies right after Stripe accepted: Stripe has the refund, we have no record of it.
    ctx.stripe.create_refund(
        payment_intent=pi,
        charge=None,
        amount=req.amount,
        reason=req.reason,
        metadata={"refund_desk_request": req.idempotency_key, "refund_request_id": str(request_id)},
        idempotency_key=req.idempotency_key,
        account=None,
    )
    assert refund_requests.recover_next(ctx, now=utcnow()) is None  # not stuck for long enough yet
    later = utcnow() + timedelta(minutes=2)
    recovered = refund_requests.recover_next(ctx, now=later)
    assert recovered is not None and recovered.stripe_refund_id
    assert len(refunds_created(stripe_api)) == 1
    assert stripe_api.object(seeded["charge"]["id"])["amount_refunded"] == 1200
    refund_row = conn.execute("SELECT request_id FROM refunds WHERE id = %s", (recovered.stripe_refund_id,))
    assert refund_row.fetchone() == (request_id,)
    assert refund_requests.recover_next(ctx, now=later + timedelta(minutes=5)) is None


def test_a_timeout_leaves_it_sent_and_recovery_learns_the_outcome(desk: LiveServer, stripe_api, conn) -> None:
    seeded = stripe_api.add_payment(5000, "usd")
    pi = seeded["payment_intent"]["id"]
    said = _reply(desk, desk.slash(f"request {pi} 12", user_id=AGENT))
    request_id = int(said.split("#")[1].split(":")[0])
    stripe_api.hang_next(2, seconds=5, path_prefix="/v1/refunds")  # longer than our 2 s timeout, twice
    ctx = desk.deps.requests
    refund_requests.approve(ctx, request_id, user=MANAGER, roles=desk.deps.roles.roles(MANAGER), now=utcnow())
    result = refund_requests.execute(ctx, request_id, now=utcnow())
    assert result.status == "sent" and result.stripe_refund_id is None  # unconfirmed
    recovered = refund_requests.recover_next(ctx, now=utcnow() + timedelta(minutes=2))
    assert recovered.stripe_refund_id is not None
    charge = stripe_api.object(seeded["charge"]["id"])
    assert charge["amount_refunded"] == 1200, "one refund, whatever the timeouts"


def test_rejection_needs_a_reason_and_tells_everyone(desk: LiveServer, stripe_api, conn) -> None:
    pi = stripe_api.add_payment(5000, "usd")["payment_intent"]["id"]
    said = _reply(desk, desk.slash(f"request {pi} all", user_id=AGENT))
    request_id = int(said.split("#")[1].split(":")[0])
    resp, _ = desk.click(ids.REJECT_REQUEST, str(request_id), user=MANAGER)
    desk.slack.wait_for(lambda calls: any(c.method == "views.open" for c in calls))
    modal = desk.slack.calls_to("views.open")[-1].args["view"]
    assert modal["callback_id"] == ids.REJECT_MODAL and modal["private_metadata"] == str(request_id)

    def values(text):
        return {ids.REJECT_REASON_BLOCK: {ids.INPUT: {"type": "plain_text_input", "value": text}}}

    empty = desk.submit(ids.REJECT_MODAL, values("  "), user=MANAGER, private_metadata=str(request_id))
    assert empty["response_action"] == "errors" and "Say why" in empty["errors"][ids.REJECT_REASON_BLOCK]
    assert (
        desk.submit(
            ids.REJECT_MODAL, values("Customer already got a credit"), user=MANAGER, private_metadata=str(request_id)
        )
        == {}
    )
    req = _request(desk, conn, request_id)
    assert (req.status, req.reject_reason, req.decided_by) == ("rejected", "Customer already got a credit", MANAGER)
    again = desk.submit(ids.REJECT_MODAL, values("twice"), user=MANAGER2, private_metadata=str(request_id))
    assert "already decided" in again["errors"][ids.REJECT_REASON_BLOCK]
    desk.deliver()
    assert any(
        "rejected by" in m["text"] and "Customer already got a credit" in m["text"] for m in desk.slack.messages[AGENT]
    )
    assert refunds_created(stripe_api) == []


def test_request_modal_validates_fields_in_place(desk: LiveServer, stripe_api, conn) -> None:
    pi = stripe_api.add_payment(5000, "usd")["payment_intent"]["id"]
    _reply(desk, desk.slash(pi, user_id=AGENT))
    desk.click(ids.REQUEST_REFUND, pi, user=AGENT, channel="C0SUPPORT1")
    desk.slack.wait_for(lambda calls: any(c.method == "views.open" for c in calls))
    modal = desk.slack.calls_to("views.open")[-1].args["view"]
    amount_input = next(b for b in modal["blocks"] if b.get("block_id") == ids.AMOUNT_BLOCK)
    assert amount_input["element"]["initial_value"] == "50.00"

    def submit(amount: str, reason: str = "requested_by_customer") -> dict:
        values = {
            ids.AMOUNT_BLOCK: {ids.INPUT: {"type": "plain_text_input", "value": amount}},
            ids.REASON_BLOCK: {ids.INPUT: {"type": "static_select", "selected_option": {"value": reason}}},
            ids.NOTE_BLOCK: {ids.INPUT: {"type": "plain_text_input", "value": "from the modal"}},
        }
        return desk.submit(ids.REQUEST_MODAL, values, user=AGENT, private_metadata=modal["private_metadata"])

    for amount, says in [
        ("abc", "not an amount"),
        ("0", "more than zero"),
        ("-5", "not an amount"),
        ("1.234", "at most 2 decimals"),
        ("50.01", "more than the $50.00 still refundable"),
    ]:
        answer = submit(amount)
        assert answer["response_action"] == "errors" and says in answer["errors"][ids.AMOUNT_BLOCK], (amount, answer)
    assert "Pick one" in submit("10", reason="because")["errors"][ids.REASON_BLOCK]
    assert submit("10") == {}
    conn.rollback()
    row = conn.execute("SELECT amount, status, requested_via, note FROM refund_requests").fetchone()
    assert row == (1000, "pending", "modal", "from the modal")
    second = submit("5")
    assert "already waiting for approval" in second["errors"][ids.AMOUNT_BLOCK]


@pytest.mark.parametrize(
    ("setup", "says"),
    [
        ("failed", "has not succeeded"),
        ("uncaptured", "not captured"),
        ("refunded", "fully refunded"),
        ("disputed", "open dispute"),
    ],
)
def test_payments_that_cannot_be_refunded_are_refused_with_the_reason(
    desk: LiveServer, stripe_api, setup, says
) -> None:
    if setup == "failed":
        seeded = stripe_api.add_payment(5000, "usd", status="failed")
    elif setup == "uncaptured":
        seeded = stripe_api.add_payment(5000, "usd", captured=False)
    else:
        seeded = stripe_api.add_payment(5000, "usd")
    if setup == "refunded":
        stripe_api.settle_refund(
            desk.deps.stripe.create_refund(
                payment_intent=seeded["payment_intent"]["id"],
                charge=None,
                amount=5000,
                reason="requested_by_customer",
                metadata={},
                idempotency_key="k-full",
                account=None,
            )["id"],
            "succeeded",
        )
    if setup == "disputed":
        stripe_api.add_dispute(seeded["charge"]["id"])
    said = _reply(desk, desk.slash(f"request {seeded['payment_intent']['id']} all", user_id=AGENT))
    assert said.startswith("Not requested") and says in said


def test_expiry_at_the_boundary(desk: LiveServer, stripe_api, conn) -> None:
    pi = stripe_api.add_payment(5000, "usd")["payment_intent"]["id"]
    said = _reply(desk, desk.slash(f"request {pi} 5", user_id=AGENT))
    request_id = int(said.split("#")[1].split(":")[0])
    deadline = _request(desk, conn, request_id).expires_at
    assert deadline - _request(desk, conn, request_id).created_at == timedelta(days=7)
    ctx = desk.deps.requests
    with freeze_time(deadline - timedelta(microseconds=1)):
        assert refund_requests.expire_due(ctx, now=utcnow()) == []
    with freeze_time(deadline):
        [expired] = refund_requests.expire_due(ctx, now=utcnow())
    assert expired.id == request_id and expired.status == "expired"
    with freeze_time(deadline + timedelta(days=1)):
        assert refund_requests.expire_due(ctx, now=utcnow()) == []  # once
    desk.deliver()
    assert any("expired without a decision" in m["text"] for m in desk.slack.messages[AGENT])
    assert "already decided: expired" in _reply(desk, desk.click(ids.APPROVE_REQUEST, str(request_id), user=MANAGER))


def test_pending_and_stats(desk: LiveServer, stripe_api) -> None:
    pi = stripe_api.add_payment(5000, "jpy")["payment_intent"]["id"]
    said = _reply(desk, desk.slash(f"request {pi} 1200", user_id=AGENT))
    assert "¥1,200" in said
    pending, _ = desk.slash("pending", user_id=AGENT)
    assert "#1 ¥1,200" in json.dumps(pending.json(), ensure_ascii=False)
    stats, _ = desk.slash("stats 7d", user_id=AGENT)
    assert "Waiting for approval: 1 · ¥1,200" in json.dumps(stats.json(), ensure_ascii=False)


def test_two_approvers_above_the_second_threshold(make_server_for, settings, slack, stripe_api, conn) -> None:
    desk = make_server_for(
        replace_settings(settings, approvers=frozenset({"S0APPROVERS"}), second_approval_threshold={"usd": 100000}),
        slack,
    )
    pi = stripe_api.add_payment(500000, "usd")["payment_intent"]["id"]
    said = _reply(desk, desk.slash(f"request {pi} 1500", user_id=AGENT))
    assert "waiting for two approvers" in said
    request_id = int(said.split("#")[1].split(":")[0])
    desk.click(ids.APPROVE_REQUEST, str(request_id), user=MANAGER)
    wait_until(lambda: _request(desk, conn, request_id).approvals == [MANAGER], timeout=10, what="the first approval")
    assert _request(desk, conn, request_id).status == "pending"
    assert "second, different approver" in _reply(desk, desk.click(ids.APPROVE_REQUEST, str(request_id), user=MANAGER))
    desk.click(ids.APPROVE_REQUEST, str(request_id), user=MANAGER2)
    desk.slack.wait_for(lambda calls: bool(refunds_created(stripe_api)), timeout=15)
    req = _request(desk, conn, request_id)
    assert req.approvals == [MANAGER, MANAGER2] and req.decided_by == MANAGER2 and req.status in {"sent", "succeeded"}


def test_only_requesters_may_ask_but_anyone_may_look_up(make_server_for, settings, slack, stripe_api) -> None:
    desk = make_server_for(
        replace_settings(settings, requesters=frozenset({"U0SUPPORT1"}), approvers=frozenset({"S0APPROVERS"})), slack
    )
    pi = stripe_api.add_payment(5000, "usd")["payment_intent"]["id"]
    assert "not allowed to ask for refunds" in _reply(desk, desk.slash(f"request {pi} all", user_id="U0STRANGER"))
    assert "$50.00" in _reply(desk, desk.slash(pi, user_id="U0STRANGER"))
    assert "waiting for an approver" in _reply(desk, desk.slash(f"request {pi} all", user_id=AGENT))


def test_splitting_a_refund_does_not_dodge_the_threshold(desk: LiveServer, stripe_api, conn) -> None:
    pi = stripe_api.add_payment(2000000, "usd")["payment_intent"]["id"]  # $20,000
    said = [_confirm(desk, desk.slash(f"request {pi} 2500", user_id=MANAGER), MANAGER) for _ in range(2)]
    assert "runs at once" in said[0] and "runs at once" in said[1]  # $5,000 in all: at the threshold
    third = _reply(desk, desk.slash(f"request {pi} 2500", user_id=MANAGER))
    assert "waiting for an approver" in third, third  # $7,500 would be above it


def _approved_and_sent(desk: LiveServer, stripe_api, conn, amount: str) -> tuple[int, str, str]:
    pi = stripe_api.add_payment(10000, "usd")["payment_intent"]["id"]
    said = _reply(desk, desk.slash(f"request {pi} {amount}", user_id=AGENT))
    request_id = int(said.split("#")[1].split(":")[0])
    desk.click(ids.APPROVE_REQUEST, str(request_id), user=MANAGER)
    wait_until(
        lambda: _request(desk, conn, request_id).stripe_refund_id is not None,
        timeout=15,
        what="recording the Stripe refund",
    )
    return request_id, pi, _request(desk, conn, request_id).stripe_refund_id


def test_a_refund_that_fails_after_succeeding_gives_the_money_back(desk: LiveServer, stripe_api, conn) -> None:
    request_id, pi, refund_id = _approved_and_sent(desk, stripe_api, conn, "40")
    stripe_api.settle_refund(refund_id, "succeeded")
    _settle_everything(desk, stripe_api)
    assert _request(desk, conn, request_id).status == "succeeded"
    refund = stripe_api.object(refund_id)
    later = {
        "id": "evt_failed_later",
        "object": "event",
        "type": "refund.failed",
        "livemode": False,
        "created": refund["created"] + 3600,
        "data": {"object": {**refund, "status": "failed", "failure_reason": "lost_or_stolen_card"}},
    }
    assert desk.webhook(later).status_code == 200
    desk.drain()
    req = _request(desk, conn, request_id)
    assert (req.status, req.failure_message) == ("failed", "lost or stolen card")
    # The money is refundable again, and a new request for it is accepted.
    assert "waiting for an approver" in _reply(desk, desk.slash(f"request {pi} 100", user_id=AGENT))


def test_a_refund_canceled_in_stripe_cancels_its_request(desk: LiveServer, stripe_api, conn) -> None:
    import requests as http
    from conftest import STRIPE_KEY

    request_id, _, refund_id = _approved_and_sent(desk, stripe_api, conn, "15")
    resp = http.post(
        f"{stripe_api.url}/v1/refunds/{refund_id}/cancel", timeout=5, headers={"Authorization": f"Bearer {STRIPE_KEY}"}
    )
    assert resp.status_code == 200, resp.text
    _settle_everything(desk, stripe_api)
    assert _request(desk, conn, request_id).status == "canceled"
