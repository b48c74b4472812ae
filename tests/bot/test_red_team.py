"""Regression tests for the red-team findings on the Slack side: amounts with one reading, a confirmation
before any refund that runs without a second person, escaped user text, odd payloads, roles by id kind."""

from __future__ import annotations

import copy
import json

import pytest
from conftest import WEBHOOK_SECRET, LiveServer, replace_settings
from support import answered, fixture_json, refunds_created, wait_until

from messages import ids
from standins.signing import interaction_body, slack_headers
from standins.slack_api import SlackStandIn
from standins.slack_sender import block_actions, view_submission
from standins.stripe_api import StripeStandIn

AGENT, MANAGER, MANAGER2 = "U0SUPPORT1", "U0MANAGER1", "U0MANAGER2"


@pytest.fixture
def desk(make_server_for, settings, slack: SlackStandIn, stripe_api: StripeStandIn) -> LiveServer:
    configured = replace_settings(
        settings,
        approvers=frozenset({"S0APPROVERS"}),
        approval_threshold={"usd": 500000, "eur": 500000, "jpy": 750000, "kwd": 1500000},
    )
    web = make_server_for(configured, slack)
    stripe_api.deliver_webhooks(f"{web.url}/webhooks/stripe", WEBHOOK_SECRET)
    return web


def _buttons(answer: dict) -> dict[str, str]:
    return {
        e["action_id"]: e.get("value", "")
        for b in answer.get("blocks") or []
        if b["type"] == "actions"
        for e in b["elements"]
    }


def _post_raw(web: LiveServer, payload: object) -> int:
    body = interaction_body(payload)  # type: ignore[arg-type]
    headers = slack_headers(body, web.settings.slack_signing_secret)
    resp = web.http.post(web.sender.url, data=body.encode(), headers=headers, timeout=10)
    return resp.status_code


def test_a_mistyped_amount_on_a_large_payment_is_refused_and_moves_nothing(desk: LiveServer, stripe_api, conn) -> None:
    pi = stripe_api.add_payment(400000, "usd")["payment_intent"]["id"]
    resp, _ = desk.slash(f"request {pi} 25.5O duplicate customer charged twice", user_id=MANAGER)
    said = json.dumps(resp.json(), ensure_ascii=False)
    assert "“25.5O” is not an amount" in said
    conn.rollback()
    assert conn.execute("SELECT count(*) FROM refund_requests").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM refund_drafts").fetchone() == (0,)
    assert refunds_created(stripe_api) == []


@pytest.mark.parametrize(
    ("amount", "currency", "captured", "shown", "minor"),
    [
        ("12,50", "eur", 5000, "€12.50", 1250),
        ("1,00", "usd", 50000, "$1.00", 100),
        ("10,5", "usd", 50000, "$10.50", 1050),
        ("1,5", "kwd", 50000, "1.500 KWD", 1500),
        ("1,234", "jpy", 50000, "¥1,234", 1234),
    ],
)
def test_a_decimal_comma_is_read_once_shown_and_refunded_as_shown(
    desk: LiveServer, stripe_api, amount: str, currency: str, captured: int, shown: str, minor: int
) -> None:
    pi = stripe_api.add_payment(captured, currency)["payment_intent"]["id"]
    answer = answered(desk, desk.slash(f"request {pi} {amount} duplicate", user_id=MANAGER))
    assert f"Refund {shown} on `{pi}` now?" in answer["text"]
    assert refunds_created(stripe_api) == [], "nothing moves before the confirmation"
    done = answered(desk, desk.click(ids.CONFIRM_REFUND, _buttons(answer)[ids.CONFIRM_REFUND], user=MANAGER))
    assert "runs at once" in done["text"] and shown in done["text"]
    desk.slack.wait_for(lambda calls: bool(refunds_created(stripe_api)), timeout=15)
    [created] = refunds_created(stripe_api)
    assert created["params"]["amount"] == str(minor)


def test_an_ambiguous_amount_is_refused_naming_both_readings(desk: LiveServer, stripe_api) -> None:
    pi = stripe_api.add_payment(5000000, "kwd")["payment_intent"]["id"]
    answer = answered(desk, desk.slash(f"request {pi} 1,234", user_id=MANAGER))
    assert "Not requested" in answer["text"] and "1.234 KWD or 1,234.000 KWD" in answer["text"]


def test_all_shows_the_amount_and_a_double_click_refunds_once(desk: LiveServer, stripe_api, conn) -> None:
    pi = stripe_api.add_payment(4321, "usd")["payment_intent"]["id"]
    answer = answered(desk, desk.slash(f"request {pi} all", user_id=MANAGER))
    assert "Refund $43.21" in answer["text"]
    draft = _buttons(answer)[ids.CONFIRM_REFUND]
    first = desk.click(ids.CONFIRM_REFUND, draft, user=MANAGER)
    second = desk.click(ids.CONFIRM_REFUND, draft, user=MANAGER)
    texts = {answered(desk, first)["text"][:12], answered(desk, second)["text"][:12]}
    assert any(t.startswith("Request #1") for t in texts) and any(t.startswith("Not refunded") for t in texts)
    desk.slack.wait_for(lambda calls: bool(refunds_created(stripe_api)), timeout=15)
    assert [r["params"]["amount"] for r in refunds_created(stripe_api)] == ["4321"]
    conn.rollback()
    assert conn.execute("SELECT count(*) FROM refund_requests").fetchone() == (1,)


def test_cancel_and_someone_elses_confirm_move_nothing(desk: LiveServer, stripe_api, conn) -> None:
    pi = stripe_api.add_payment(5000, "usd")["payment_intent"]["id"]
    answer = answered(desk, desk.slash(f"request {pi} 20", user_id=MANAGER))
    draft = _buttons(answer)[ids.CONFIRM_REFUND]
    assert "Not refunded" in answered(desk, desk.click(ids.CONFIRM_REFUND, draft, user=MANAGER2))["text"]
    assert "Canceled" in answered(desk, desk.click(ids.CANCEL_REFUND, draft, user=MANAGER))["text"]
    assert "Not refunded" in answered(desk, desk.click(ids.CONFIRM_REFUND, draft, user=MANAGER))["text"]
    conn.rollback()
    assert conn.execute("SELECT count(*) FROM refund_requests").fetchone() == (0,)
    assert refunds_created(stripe_api) == []


def _modal_values(amount: str, note: str = "from the modal") -> dict:
    return {
        ids.AMOUNT_BLOCK: {ids.INPUT: {"type": "plain_text_input", "value": amount}},
        ids.REASON_BLOCK: {ids.INPUT: {"type": "static_select", "selected_option": {"value": "duplicate"}}},
        ids.NOTE_BLOCK: {ids.INPUT: {"type": "plain_text_input", "value": note}},
    }


def test_the_modal_shows_the_exact_amount_before_a_refund_that_runs_at_once(desk: LiveServer, stripe_api) -> None:
    pi = stripe_api.add_payment(7000, "eur")["payment_intent"]["id"]
    answer = desk.submit(ids.REQUEST_MODAL, _modal_values(""), user=MANAGER, private_metadata=f"{pi}|C0SUPPORT1")
    assert answer["response_action"] == "update"
    view = answer["view"]
    assert view["callback_id"] == ids.CONFIRM_MODAL and "€70.00" in json.dumps(view, ensure_ascii=False)
    assert refunds_created(stripe_api) == []
    assert desk.submit(ids.CONFIRM_MODAL, {}, user=MANAGER, private_metadata=view["private_metadata"]) == {}
    desk.slack.wait_for(lambda calls: bool(refunds_created(stripe_api)), timeout=15)
    assert [r["params"]["amount"] for r in refunds_created(stripe_api)] == ["7000"]
    again = desk.submit(ids.CONFIRM_MODAL, {}, user=MANAGER, private_metadata=view["private_metadata"])
    assert "already confirmed" in json.dumps(again)
    assert len(refunds_created(stripe_api)) == 1


def test_refund_to_avoid_a_dispute_asks_for_a_confirmation(desk: LiveServer, stripe_api) -> None:
    seeded = stripe_api.add_payment(5000, "usd")
    value = f"{seeded['payment_intent']['id']}|issfr_1NnrwHBw2dPENLoi9lnhV3RQ"
    answer = answered(desk, desk.click(ids.EFW_REFUND, value, user=MANAGER, channel="C0DISPUTES"))
    assert "Refund $50.00" in answer["text"] and ids.CONFIRM_REFUND in _buttons(answer)
    assert refunds_created(stripe_api) == []


def test_a_reject_reason_and_stripes_message_reach_slack_escaped(desk: LiveServer, stripe_api, conn) -> None:
    seeded = stripe_api.add_payment(5000, "usd")
    pi = seeded["payment_intent"]["id"]
    said = answered(desk, desk.slash(f"request {pi} 10", user_id=AGENT))["text"]
    request_id = said.split("#")[1].split(":")[0]
    evil = "<!channel> rejected, <@U0MANAGER2> look <https://evil.example|here>"
    values = {ids.REJECT_REASON_BLOCK: {ids.INPUT: {"type": "plain_text_input", "value": evil}}}
    assert desk.submit(ids.REJECT_MODAL, values, user=MANAGER, private_metadata=request_id) == {}
    desk.deliver()
    posted = [m["text"] for ms in desk.slack.messages.values() for m in ms]
    assert any("&lt;!channel&gt; rejected" in t for t in posted)
    assert not any("<!channel>" in t or "<https://evil.example" in t for t in posted)

    second = answered(desk, desk.slash(f"request {pi} 11", user_id=AGENT))["text"]
    stripe_api.fail_next(
        1,
        status=400,
        path_prefix="/v1/refunds",
        error_type="invalid_request_error",
        message="<!here> refused <https://evil.example|now>",
    )
    desk.click(ids.APPROVE_REQUEST, second.split("#")[1].split(":")[0], user=MANAGER)
    desk.slack.wait_for(lambda calls: bool([r for r in stripe_api.requests if r["path"] == "/v1/refunds"]), timeout=15)
    conn.rollback()
    wait_until(
        lambda: (
            conn.rollback()
            or conn.execute("SELECT count(*) FROM refund_requests WHERE status = 'failed'").fetchone() == (1,)
        ),
        timeout=15,
        what="the refused refund",
    )
    desk.deliver()
    posted = [m["text"] for ms in desk.slack.messages.values() for m in ms]
    assert any("&lt;!here&gt; refused" in t for t in posted)
    assert not any("<!here>" in t for t in posted)


@pytest.mark.parametrize("actions", [[], None, [None], ["x"], [{"action_id": ids.APPROVE_REQUEST}]])
def test_clicks_without_a_usable_action_get_no_5xx(desk: LiveServer, actions) -> None:
    payload = block_actions(
        ids.APPROVE_REQUEST, "1", user=MANAGER, channel="C0APPROVALS", response_url=desk.slack.response_url("odd")
    )
    payload["actions"] = actions
    assert _post_raw(desk, payload) < 500


@pytest.mark.parametrize("value", ["²", "٣", "1" * 40, "", "-1"])
def test_a_button_value_that_is_no_request_number_is_answered(desk: LiveServer, value: str) -> None:
    answer = answered(desk, desk.click(ids.APPROVE_REQUEST, value, user=MANAGER))
    assert "does not name a request" in answer["text"]


@pytest.mark.parametrize("callback", [ids.REQUEST_MODAL, ids.REJECT_MODAL, ids.CONFIRM_MODAL])
@pytest.mark.parametrize("state", [None, {"values": None}, {"values": {"amount": None}}, "x"])
def test_a_submission_with_an_odd_state_gets_an_answer_not_a_5xx(desk: LiveServer, callback: str, state) -> None:
    payload = view_submission(callback, {}, user=MANAGER, private_metadata="pi_3MtwBwLkdIwHu7ix28a3tqPa|C1")
    payload["view"]["state"] = state
    assert _post_raw(desk, payload) < 500


def test_a_nul_byte_in_a_note_is_dropped_and_the_request_filed(desk: LiveServer, stripe_api, conn) -> None:
    pi = stripe_api.add_payment(5000, "usd")["payment_intent"]["id"]
    answer = desk.submit(
        ids.REQUEST_MODAL, _modal_values("10", note="one\x00two\x07"), user=AGENT, private_metadata=f"{pi}|C0SUPPORT1"
    )
    assert answer == {}
    conn.rollback()
    assert conn.execute("SELECT note, amount FROM refund_requests").fetchone() == ("onetwo", 1000)
    said = answered(desk, desk.slash(f"request {pi} 5 dup a\x00b", user_id=AGENT))["text"]
    assert "already waiting" in said


def test_a_group_id_as_the_user_is_never_an_approver(desk: LiveServer, stripe_api, conn) -> None:
    pi = stripe_api.add_payment(5000, "usd")["payment_intent"]["id"]
    said = answered(desk, desk.slash(f"request {pi} 10", user_id=AGENT))["text"]
    request_id = said.split("#")[1].split(":")[0]
    answer = answered(desk, desk.click(ids.APPROVE_REQUEST, request_id, user="S0APPROVERS"))
    assert "Only approvers" in answer["text"]
    conn.rollback()
    assert conn.execute("SELECT status FROM refund_requests").fetchone() == ("pending",)


def test_a_requester_named_directly_asks_while_slacks_groups_fail(
    make_server_for, settings, slack, stripe_api, conn
) -> None:
    desk = make_server_for(
        replace_settings(
            settings,
            requesters=frozenset({AGENT, "S0SUPPORT"}),
            approvers=frozenset({"S0APPROVERS"}),
            admins=frozenset({"S0ADMINS"}),
        ),
        slack,
    )
    pi = stripe_api.add_payment(5000, "usd")["payment_intent"]["id"]
    slack.fail_next("usergroups.users.list", 50, kind="server_error")
    said = answered(desk, desk.slash(f"request {pi} 10", user_id=AGENT))["text"]
    assert "is waiting for an approver" in said, said
    # Someone who could only be a requester through a group is told Slack could not say, not refused outright.
    other = answered(desk, desk.slash(f"request {pi} 10", user_id="U0SOMEONE"))["text"]
    assert "try again in a minute" in other, other


def test_only_approvers_admins_and_oncall_take_a_dispute(make_server_for, settings, slack, stripe_api, conn) -> None:
    desk = make_server_for(
        replace_settings(settings, approvers=frozenset({"S0APPROVERS"}), oncall_group="S0ONCALL"), slack
    )
    slack.set_usergroup("S0ONCALL", ["U0ONCALL1"])
    dispute = fixture_json("stripe/event_charge.dispute.created__stripe-ruby-mock.json")
    assert desk.webhook(dispute).status_code == 200
    desk.drain()
    dispute_id = dispute["data"]["object"]["id"]
    refused = answered(desk, desk.click(ids.ASSIGN_DISPUTE, dispute_id, user="U0STRANGER", channel="C0DISPUTES"))
    assert "Only approvers, admins and the on-call group" in refused["text"]
    conn.rollback()
    assert conn.execute("SELECT owner FROM disputes").fetchone() == (None,)
    taken = answered(desk, desk.click(ids.ASSIGN_DISPUTE, dispute_id, user="U0ONCALL1", channel="C0DISPUTES"))
    assert "You own" in taken["text"]


def test_a_refund_seen_by_a_lookup_before_its_webhook_reaches_the_feed_once(web: LiveServer, stripe_api) -> None:
    seeded = stripe_api.add_payment(5000, "usd")
    pi = seeded["payment_intent"]["id"]
    # Made in the Dashboard: the lookup sees it before its webhook arrives.
    refund = web.deps.stripe.create_refund(
        payment_intent=pi,
        charge=None,
        amount=1500,
        reason="requested_by_customer",
        metadata={},
        idempotency_key="dashboard-1",
        account=None,
    )
    assert refund["id"] in json.dumps(answered(web, web.slash(pi)))  # fetched from Stripe and stored
    event = {
        "id": "evt_feed_once",
        "object": "event",
        "type": "refund.created",
        "livemode": False,
        "created": refund["created"] - 5,
        "api_version": "2024-06-20",
        "data": {"object": copy.deepcopy(refund)},
    }
    assert web.webhook(event).status_code == 200
    web.drain()
    web.deliver()
    feed = [m for m in web.slack.messages.get("C0REFUNDFEED", []) if refund["id"] in json.dumps(m)]
    assert len(feed) == 1
    redelivered = {**event, "id": "evt_feed_once_2"}
    web.webhook(redelivered)
    web.drain()
    assert web.deliver() == 0


def test_a_note_that_says_payload_is_still_a_command(desk: LiveServer, stripe_api, conn) -> None:
    pi = stripe_api.add_payment(5000, "usd")["payment_intent"]["id"]
    said = answered(desk, desk.slash(f"request {pi} 10 duplicate the payload form charged twice", user_id=AGENT))
    assert "is waiting for an approver" in said["text"]
    conn.rollback()
    assert conn.execute("SELECT note FROM refund_requests").fetchone() == ("the payload form charged twice",)


def test_two_drafts_confirmed_in_turn_never_dodge_the_threshold(desk: LiveServer, stripe_api, conn) -> None:
    # Both drafts were within the $5,000 threshold when shown; together they are not.
    pi = stripe_api.add_payment(2000000, "usd")["payment_intent"]["id"]
    drafts = [_buttons(answered(desk, desk.slash(f"request {pi} 3000", user_id=MANAGER)))[ids.CONFIRM_REFUND]]
    drafts.append(_buttons(answered(desk, desk.slash(f"request {pi} 3000", user_id=MANAGER)))[ids.CONFIRM_REFUND])
    first = answered(desk, desk.click(ids.CONFIRM_REFUND, drafts[0], user=MANAGER))["text"]
    assert "runs at once" in first
    wait_until(lambda: len(refunds_created(stripe_api)) == 1, timeout=15, what="the first refund")
    second = answered(desk, desk.click(ids.CONFIRM_REFUND, drafts[1], user=MANAGER))["text"]
    assert "waiting for an approver" in second, second
    conn.rollback()
    statuses = [row[0] for row in conn.execute("SELECT status FROM refund_requests ORDER BY id")]
    assert statuses[1] == "pending" and statuses[0] in {"sent", "succeeded"}
    assert len(refunds_created(stripe_api)) == 1
