"""The Home tab over signed HTTP: Events API delivery, what each role sees, decisions made on it, refreshes."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import WEBHOOK_SECRET, LiveServer, replace_settings
from support import fixture_json, refunds_created, wait_until

from domain.clock import utcnow
from messages import ids
from services import home
from standins.slack_api import SlackStandIn
from standins.slack_sender import event_callback
from standins.stripe_api import StripeStandIn

AGENT, MANAGER, MANAGER2, OUTSIDER, ONCALL = "U0SUPPORT1", "U0MANAGER1", "U0MANAGER2", "U0OUTSIDE1", "U0ONCALL01"


@pytest.fixture
def desk(make_server_for, settings, slack: SlackStandIn, stripe_api: StripeStandIn) -> LiveServer:
    configured = replace_settings(
        settings,
        requesters=frozenset({AGENT, MANAGER2}),
        approvers=frozenset({"S0APPROVERS"}),
        oncall_group=ONCALL,
        approval_threshold={"usd": 100},
    )
    web = make_server_for(configured, slack)
    stripe_api.deliver_webhooks(f"{web.url}/webhooks/stripe", WEBHOOK_SECRET)
    return web


def _home(web: LiveServer, user: str, *, after: int = 0) -> str:
    """Open the user's Home tab and return what was published (after `after` earlier publishes)."""
    resp = web.sender.home_opened(user)
    assert resp.status_code == 200, resp.text
    return _published(web, user, after=after)


def _published(web: LiveServer, user: str, *, after: int = 0) -> str:
    def mine(calls):
        return [c for c in calls if c.method == "views.publish" and c.args.get("user_id") == user and c.status == 200]

    calls = web.slack.wait_for(lambda calls: len(mine(calls)) > after, timeout=15)
    view = mine(calls)[-1].args["view"]
    assert view["type"] == "home" and web.slack.homes[user]["blocks"] == view["blocks"]
    return json.dumps(view["blocks"], ensure_ascii=False)


def _publishes(web: LiveServer, user: str) -> int:
    return sum(1 for c in web.slack.calls_to("views.publish") if c.args.get("user_id") == user)


def _ask(web: LiveServer, stripe_api: StripeStandIn, amount: str = "25", user: str = AGENT) -> tuple[str, int]:
    pi = stripe_api.add_payment(12000, "usd", email="jenny@example.com")["payment_intent"]["id"]
    resp, key = web.slash(f"request {pi} {amount} duplicate charged twice", user_id=user)
    assert resp.status_code == 200
    web.slack.wait_for(lambda calls: any(c.key == key for c in calls), timeout=15)
    said = web.slack.responses(key)[-1]["text"]
    return pi, int(said.split("#")[1].split(":")[0])


def _dispute(conn, dispute_id: str, owner: str | None, status: str = "needs_response") -> None:
    conn.execute(
        "INSERT INTO disputes (id, charge_id, amount, currency, status, reason, evidence_due_by, owner,"
        " stripe_created, observed_at) VALUES (%s, 'ch_X', 4200, 'usd', %s, 'fraudulent', now() + interval '3 days',"
        " %s, now(), now())",
        (dispute_id, status, owner),
    )
    conn.commit()


def test_url_verification_answers_slacks_challenge(desk: LiveServer) -> None:
    payload = fixture_json("slack/event__url_verification__slack_docs_example__java_sdk_test.json")
    resp = desk.sender.event(payload)
    assert resp.status_code == 200 and payload["challenge"] in resp.text


def test_the_real_app_home_opened_payload_publishes_that_persons_tab(desk: LiveServer) -> None:
    payload = fixture_json("slack/event__app_home_opened__real_payload__java_sdk_test.json")
    payload["event"]["user"] = OUTSIDER
    assert desk.sender.event(payload).status_code == 200
    assert "How to use the refund desk" in _published(desk, OUTSIDER)


def test_opening_the_messages_tab_publishes_nothing(desk: LiveServer) -> None:
    payload = fixture_json("slack/event__app_home_opened__org_app_messages_tab__bolt_python_test.json")
    assert payload["event"]["tab"] == "messages"
    assert desk.sender.event(payload).status_code == 200
    desk.sender.home_opened(OUTSIDER)  # a later Home-tab opening is published; the Messages one never was
    _published(desk, OUTSIDER)
    assert {c.args["user_id"] for c in desk.slack.calls_to("views.publish")} == {OUTSIDER}


def test_each_role_sees_what_concerns_them_and_nothing_more(desk: LiveServer, stripe_api, conn) -> None:
    pi, number = _ask(desk, stripe_api)
    _dispute(conn, "dp_MINE000001", ONCALL)
    _dispute(conn, "dp_NOBODYS001", None)
    _dispute(conn, "dp_SOMEONE001", MANAGER2)
    _dispute(conn, "dp_CLOSED0001", None, status="lost")

    approver = _home(desk, MANAGER)
    assert "Waiting for your decision" in approver and f"#{number}" in approver and pi in approver
    assert ids.APPROVE_REQUEST in approver and ids.REJECT_REQUEST in approver
    assert "Your requests" not in approver  # not a requester
    assert "dp_NOBODYS001" in approver and "dp_SOMEONE001" not in approver and "dp_CLOSED0001" not in approver

    requester = _home(desk, AGENT)
    assert "Your requests" in requester and f"#{number}" in requester and "Waiting for approval" in requester
    assert "Waiting for your decision" not in requester and ids.APPROVE_REQUEST not in requester
    assert "Open disputes" not in requester and "dp_" not in requester

    oncall = _home(desk, ONCALL)
    assert "dp_MINE000001" in oncall and "dp_NOBODYS001" in oncall and "dp_SOMEONE001" not in oncall
    assert oncall.index("dp_MINE000001") < oncall.index("Open disputes") + 10_000  # listed under its section
    assert "Waiting for your decision" not in oncall and "Your requests" not in oncall

    neither = _home(desk, OUTSIDER)
    assert "How to use the refund desk" in neither
    for absent in ("Waiting for your decision", "Your requests", "Open disputes", pi, "dp_", f"#{number}"):
        assert absent not in neither, absent


def test_approve_on_the_home_tab_goes_through_the_same_checks(desk: LiveServer, stripe_api, conn) -> None:
    # MANAGER2 is a requester and an approver; above the threshold their request needs someone else.
    _, own = _ask(desk, stripe_api, amount="50", user=MANAGER2)
    before = _publishes(desk, MANAGER2)
    assert desk.sender.home_click(ids.APPROVE_REQUEST, str(own), user=MANAGER2).status_code == 200
    refused = _published(desk, MANAGER2, after=before)
    assert "someone else has to approve it" in refused
    before = _publishes(desk, AGENT)
    desk.sender.home_click(ids.APPROVE_REQUEST, str(own), user=AGENT)
    assert "Only approvers can approve" in _published(desk, AGENT, after=before)
    conn.rollback()
    assert conn.execute("SELECT status FROM refund_requests WHERE id = %s", (own,)).fetchone() == ("pending",)
    assert refunds_created(stripe_api) == []

    # An approver's click on the tab (twice, at once) makes exactly one refund, and their tab moves on.
    before = _publishes(desk, MANAGER)
    with ThreadPoolExecutor(2) as pool:
        answers = list(
            pool.map(lambda _: desk.sender.home_click(ids.APPROVE_REQUEST, str(own), user=MANAGER), range(2))
        )
    assert all(a.status_code == 200 for a in answers)
    wait_until(lambda: len(refunds_created(stripe_api)) == 1, timeout=15, what="the refund")
    after = _published(desk, MANAGER, after=before)
    assert "Waiting for your decision" in after
    wait_until(
        lambda: (
            conn.rollback()
            or conn.execute("SELECT status FROM refund_requests WHERE id = %s", (own,)).fetchone()[0] == "sent"
        ),
        timeout=15,
        what="the request being sent",
    )
    assert len(refunds_created(stripe_api)) == 1


def test_reject_on_the_home_tab_opens_the_same_modal(desk: LiveServer, stripe_api) -> None:
    _, number = _ask(desk, stripe_api)
    desk.sender.home_click(ids.REJECT_REQUEST, str(number), user=MANAGER)
    desk.slack.wait_for(lambda calls: any(c.method == "views.open" for c in calls), timeout=15)
    modal = desk.slack.calls_to("views.open")[-1].args["view"]
    assert modal["callback_id"] == ids.REJECT_MODAL and modal["private_metadata"] == str(number)


def test_tabs_are_published_again_when_what_they_show_changes(desk: LiveServer, stripe_api, conn) -> None:
    _home(desk, MANAGER)
    _home(desk, AGENT)
    _home(desk, OUTSIDER)
    _, number = _ask(desk, stripe_api)
    counts = {u: _publishes(desk, u) for u in (MANAGER, AGENT, OUTSIDER)}
    assert home.refresh_stale(desk.deps, utcnow()) == 2  # the worker's job: the approver's and the requester's
    assert f"#{number}" in _published(desk, MANAGER, after=counts[MANAGER])
    assert f"#{number}" in _published(desk, AGENT, after=counts[AGENT])
    assert _publishes(desk, OUTSIDER) == counts[OUTSIDER]
    assert home.refresh_stale(desk.deps, utcnow()) == 0


def test_someone_outside_viewers_sees_no_payment_details_on_the_home_tab(
    make_server_for, settings, slack: SlackStandIn, stripe_api
) -> None:
    web = make_server_for(replace_settings(settings, viewers=frozenset({"U0VIEWER1"})), slack)
    pi, number = _ask(web, stripe_api)  # AGENT may ask (REQUESTERS unset) but is not a viewer
    shown = _home(web, AGENT)
    assert "not in VIEWERS" in shown
    assert pi not in shown and f"#{number}" not in shown and "$" not in shown and "jenny" not in shown


def test_an_event_callback_envelope_is_what_slack_sends(desk: LiveServer) -> None:
    real = fixture_json("slack/event__app_home_opened__real_payload__java_sdk_test.json")
    ours = event_callback({"type": "app_home_opened", "user": OUTSIDER, "tab": "home"})
    assert set(ours) == set(real)
