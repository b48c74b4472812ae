"""Play a short session against the real app: the embedded Postgres, Slack and Stripe stand-ins."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from datetime import UTC, datetime

import psycopg
import requests
from werkzeug.serving import make_server

from demo.render import message
from messages import ids
from settings import Settings, load_settings
from standins.signing import stripe_signature
from standins.slack_api import SlackStandIn
from standins.slack_sender import SlackSender
from standins.stripe_api import StripeStandIn
from store import db, migrate
from worker.main import start as start_worker

DEMO_DB = "refund_desk_demo"
FEED_CHANNEL = "C0REFUNDFEED"
APPROVALS = "C0APPROVALS"
DISPUTES = "C0DISPUTES"
ALERTS_CHANNEL = "C0ALERTS"
AGENT, MANAGER, ONCALL = "U0SUPPORT1", "U0MANAGER1", "U0ONCALL1"
WEBHOOK_SECRET = "whsec_demo"
SIGNING_SECRET = "demo-signing-secret"
STRIPE_KEY = "sk_test_demo"


def _fresh_database(server_url: str) -> str:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DEMO_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DEMO_DB}"')
    url = server_url.replace("/postgres?", f"/{DEMO_DB}?", 1)
    migrate.migrate(url)
    return url


class Player:
    """Types /refunds commands and clicks buttons as people would, and prints what Slack shows."""

    def __init__(self, app_url: str, slack: SlackStandIn):
        self.slack = slack
        self.sender = SlackSender(app_url, SIGNING_SECRET, slack)
        self.http = self.sender.http

    def command(self, text: str, note: str, *, user: str = AGENT) -> dict:
        """Run a slash command; print the ack and what follows through response_url."""
        print(f"\n▶ {note}\n  <@{user}>: /refunds {text}")
        started = time.perf_counter()
        resp, key = self.sender.slash(text, user=user)
        took = (time.perf_counter() - started) * 1000
        answer = json.loads(resp.text) if resp.text.startswith("{") else {"text": resp.text}
        print(f"  ← HTTP {resp.status_code} in {took:.0f} ms (the ack)")
        print(message(answer))
        if answer.get("text", "").startswith(("Looking up", "Checking")):
            self.slack.wait_for(lambda calls: any(c.key == key for c in calls), timeout=15)
            print(f"  ← then through response_url, {(time.perf_counter() - started) * 1000:.0f} ms after the command")
            answer = self.slack.responses(key)[-1]
            print(message(answer))
        return answer

    def click(self, action_id: str, value: str, note: str, *, user: str, expect_reply: bool = False) -> None:
        """Click a button in the approvals channel; print the private reply when one is expected."""
        print(f"\n▶ {note}")
        resp, key = self.sender.click(action_id, value, user=user)
        print(f"  ← HTTP {resp.status_code} (acknowledged; the work goes on after the ack)")
        if expect_reply:
            self.slack.wait_for(lambda calls: any(c.key == key for c in calls), timeout=15)
            print(f"  ← only <@{user}> sees:")
            print(message(self.slack.responses(key)[-1]))


def run(*, keep: bool = False) -> int:
    """The demo; returns the exit status."""
    # Always the embedded server (never a DATABASE_URL you may have set), in REFUND_DESK_DATA_DIR.
    base = load_settings({k: v for k, v in os.environ.items() if k == "REFUND_DESK_DATA_DIR"}, require="db")
    print("Refund desk demo: the real web app, an embedded Postgres, and local stand-ins for Slack and Stripe.")
    print(f"Starting the embedded Postgres under {base.data_dir.resolve()} …")
    server_url = db.database_url(base)
    url = _fresh_database(server_url)
    with (
        SlackStandIn(bot_token="xoxb-demo", usergroups={"S0ONCALL": [ONCALL]}) as slack,
        StripeStandIn(api_keys=(STRIPE_KEY,)) as stripe_api,
    ):
        seeded = _seed(stripe_api)
        settings = Settings(
            database_url=url,
            data_dir=base.data_dir,
            slack_bot_token="xoxb-demo",
            slack_signing_secret=SIGNING_SECRET,
            slack_api_url=slack.api_url,
            stripe_secret_key=STRIPE_KEY,
            stripe_webhook_secrets=(WEBHOOK_SECRET,),
            stripe_api_base=stripe_api.url,
            approvals_channel=APPROVALS,
            approvers=frozenset({MANAGER}),
            refunds_feed_channel=FEED_CHANNEL,
            slack_channel_pace_seconds=0.2,
            disputes_channel=DISPUTES,
            alerts_channel=ALERTS_CHANNEL,
            oncall_group="S0ONCALL",
        )
        from app import build_deps, create_app

        deps = build_deps(settings)
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        server = make_server("127.0.0.1", 0, create_app(settings, deps=deps), threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        app_url = f"http://127.0.0.1:{server.server_port}"
        print(f"App listening on {app_url}; Slack stand-in {slack.url}; Stripe stand-in {stripe_api.url}")
        player = Player(app_url, slack)
        try:
            player.command("", "A support agent asks for help")
            player.command(seeded["usd_pi"], "A USD payment, partially refunded, not yet in our store")
            player.command(seeded["usd_pi"], "The same payment again: now answered from the store at once")
            player.command(seeded["jpy_charge"], "A JPY payment, looked up by its charge id")
            player.command(seeded["usd_refund"], "A refund id leads to its payment")
            player.command(seeded["kwd_pi"], "A three-decimal currency (KWD)")
            player.command("pi_3DoesNotExist000000000", "An id Stripe does not know")
            player.command("refund everything please 🙏", "Something that is not a command")
            stop = threading.Event()
            workers = start_worker(deps, stop, idle=0.05)
            try:
                _webhooks(player, stripe_api, slack, app_url, seeded)
                _approvals(player, stripe_api, slack, seeded)
                _oncall(player, stripe_api, slack, deps, seeded)
            finally:
                stop.set()
                for thread in workers:
                    thread.join(5)
            print("\nDone. Everything above went through signed HTTP requests to the real app.")
            if keep:
                print(f"Serving on {app_url} until Ctrl-C.")
                threading.Event().wait()
        finally:
            server.shutdown()
            server.server_close()
            deps.pool.close()
    return 0


def _webhooks(
    player: Player, stripe_api: StripeStandIn, slack: SlackStandIn, app_url: str, seeded: dict[str, str]
) -> None:
    """A refund made outside the bot arrives as a signed webhook, reaches the feed and the lookup."""
    print("\n▶ Someone refunds ¥1,000 of the JPY payment in the Stripe Dashboard (the stand-in).")
    print("  Stripe sends signed webhooks to /webhooks/stripe; the worker applies them and posts to the feed.")
    stripe_api.deliver_webhooks(f"{app_url}/webhooks/stripe", WEBHOOK_SECRET)
    refund = _refund(stripe_api, seeded["jpy_charge"], 1000)
    stripe_api.flush_webhooks()
    feed = _wait_for_feed(slack, 1)
    print(f"  ← #{FEED_CHANNEL} (refunds feed):")
    print(message(feed[0]))
    stripe_api.settle_refund(refund, "succeeded")
    stripe_api.flush_webhooks()
    replies = _wait_for_feed(slack, 2)
    print("  ← the feed message is updated in place, and its thread says:")
    print(message(replies[-1]))
    duplicate = stripe_api.events[-1]
    body = json.dumps(duplicate)
    resp = player.http.post(
        f"{app_url}/webhooks/stripe",
        data=body.encode(),
        timeout=5,
        headers={"Stripe-Signature": stripe_signature(body, WEBHOOK_SECRET)},
    )
    print(f"\n▶ Stripe redelivers {duplicate['id']} ({duplicate['type']})")
    print(f"  ← HTTP {resp.status_code} {resp.text.strip()}")
    print("  (stored once, applied once)")
    player.command(seeded["jpy_charge"], "The JPY payment now shows the refund, from the store")


def _wait_for_feed(slack: SlackStandIn, count: int) -> list[dict]:
    return _wait_for(slack, FEED_CHANNEL, lambda messages: len(messages) >= count)


def _wait_for(slack: SlackStandIn, channel: str, done) -> list[dict]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        messages = slack.messages.get(channel, [])
        if done(messages):
            return messages
        time.sleep(0.05)
    raise RuntimeError(f"{channel} did not receive the expected message in time")


def _thread(slack: SlackStandIn, parent: dict) -> list[dict]:
    replies = slack.messages.get(APPROVALS, [])
    return [m for m in replies if m.get("thread_ts") == parent["ts"] and m["ts"] != parent["ts"]]


def _approvals(player: Player, stripe_api: StripeStandIn, slack: SlackStandIn, seeded: dict[str, str]) -> None:
    """A request, its approval and the webhook that completes it; then a rejection with a reason."""
    answer = player.command(
        f"request {seeded['usd_pi']} 30 duplicate charged twice at checkout",
        "A support agent asks for a $30 refund of the USD payment",
    )
    request_id = answer["text"].split("#", 1)[1].split(":", 1)[0]
    messages = _wait_for(slack, APPROVALS, lambda ms: any(f"#{request_id}:" in m["text"] for m in ms))
    parent = next(m for m in messages if f"#{request_id}:" in m["text"])
    print(f"  ← #{APPROVALS} (approvals):")
    print(message(parent))

    player.click(
        ids.APPROVE_REQUEST, request_id, "The agent tries to approve their own request", user=AGENT, expect_reply=True
    )
    player.click(ids.APPROVE_REQUEST, request_id, "A billing manager clicks Approve", user=MANAGER)
    refund = _wait_for_refund(stripe_api, request_id)
    print(f"  Stripe now has refund {refund['id']} ({refund['status']}), created with the request's idempotency key.")
    stripe_api.settle_refund(refund["id"], "succeeded")
    stripe_api.flush_webhooks()
    _wait_for(slack, APPROVALS, lambda ms: any("succeeded" in m["text"] for m in _thread(slack, parent)))
    print("  ← the approval message now reads:")
    print(message(next(m for m in slack.messages[APPROVALS] if m["ts"] == parent["ts"])))
    print("  ← and its thread:")
    for reply in _thread(slack, parent):
        print(message(reply))
    print(f"  ← the requester's DMs from the bot (<@{AGENT}>):")
    for dm in _wait_for(slack, AGENT, lambda ms: any("refunded" in m["text"] for m in ms)):
        print(message(dm))

    answer = player.command(
        f"request {seeded['kwd_pi']} 2.5 customer changed their mind", "Another request, on the KWD payment"
    )
    request_id = answer["text"].split("#", 1)[1].split(":", 1)[0]
    player.click(ids.REJECT_REQUEST, request_id, "The manager clicks Reject: a modal asks why", user=MANAGER)
    view = _wait_for_view(slack)
    print(f"  ← modal “{view['title']['text']}” opened")
    values = {ids.REJECT_REASON_BLOCK: {ids.INPUT: {"type": "plain_text_input", "value": "Outside the 14-day window"}}}
    answer = player.sender.submit(ids.REJECT_MODAL, values, user=MANAGER, private_metadata=view["private_metadata"])
    print(f"  → submitted with a reason; the modal closes ({answer or 'empty answer'})")
    dms = _wait_for(slack, AGENT, lambda ms: any("rejected" in m["text"] for m in ms))
    print(f"  ← DM to <@{AGENT}>:")
    print(message(dms[-1]))

    player.command(
        f"request {seeded['usd_pi']} 12.5O duplicate", "A manager mistypes an amount (a letter O)", user=MANAGER
    )
    answer = player.command(
        f"request {seeded['usd_pi']} 12,50 duplicate charged twice",
        "The manager asks again, with a decimal comma: within the threshold, so it would run at once",
        user=MANAGER,
    )
    draft = next(
        e["value"]
        for b in answer["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == ids.CONFIRM_REFUND
    )
    player.click(
        ids.CONFIRM_REFUND, draft, "The manager checks the amount and confirms", user=MANAGER, expect_reply=True
    )


def _oncall(player: Player, stripe_api: StripeStandIn, slack: SlackStandIn, deps, seeded: dict[str, str]) -> None:
    """A dispute from alert to loss; a payment-failure spike raised and cleared."""
    from datetime import timedelta

    from domain.clock import utcnow
    from services import oncall

    eur = stripe_api.add_payment(4516, "eur", email="pierre@example.fr", description="Concert tickets")
    print("\n▶ A customer disputes a €45.16 payment (Stripe sends charge.dispute.created and funds_withdrawn)")
    dispute = stripe_api.add_dispute(eur["charge"]["id"], reason="fraudulent", due_in_days=7)
    stripe_api.flush_webhooks()
    messages = _wait_for(slack, DISPUTES, lambda ms: any("Dispute" in m["text"] for m in ms))
    alert = messages[0]
    print(f"  ← #{DISPUTES}:")
    print(message(alert))

    print("\n▶ The on-call engineer clicks “Assign to me”")
    resp, key = player.sender.click(ids.ASSIGN_DISPUTE, dispute["id"], user=ONCALL, channel=DISPUTES)
    slack.wait_for(lambda calls: any(c.key == key for c in calls), timeout=15)
    print(f"  ← only <@{ONCALL}> sees: {slack.responses(key)[-1]['text']}")

    due = datetime.fromtimestamp(dispute["evidence_details"]["due_by"], UTC)
    moment = due - timedelta(hours=71)
    print(f"\n▶ Time moves forward to {moment:%Y-%m-%d %H:%M} UTC, 71 h before the evidence deadline")
    oncall.send_reminders(deps.pool, deps.settings, moment)
    _wait_for(slack, DISPUTES, lambda ms: any(m["text"].startswith("⏰") for m in ms))

    print("\n▶ The dispute is lost (charge.dispute.closed)")
    stripe_api.update_dispute(dispute["id"], status="lost")
    stripe_api.flush_webhooks()
    _wait_for(slack, DISPUTES, lambda ms: any(m["text"].startswith("Closed:") for m in ms))
    print("  ← the alert now reads:")
    print(message(next(m for m in slack.messages[DISPUTES] if m["ts"] == alert["ts"])))
    print("  ← and its thread:")
    for reply in [m for m in slack.messages[DISPUTES] if m.get("thread_ts") == alert["ts"] and m["ts"] != alert["ts"]]:
        print(message(reply))

    print("\n▶ A spike of declines: 30 of 110 payments fail within a minute")
    for i in range(110):
        stripe_api.add_payment(1000 + i, "usd", status="failed" if i % 11 < 3 else "succeeded", email=None)
    stripe_api.flush_webhooks()
    _wait_until_applied(deps)
    oncall.check_incidents(deps.pool, deps.settings, utcnow())
    alerts = _wait_for(slack, ALERTS_CHANNEL, lambda ms: bool(ms))
    print(f"  ← #{ALERTS_CHANNEL}:")
    print(message(alerts[0]))
    later = utcnow() + deps.settings.failure_rate_window
    print("\n▶ Time moves forward: the window empties, then stays healthy for a full window")
    oncall.check_incidents(deps.pool, deps.settings, later + timedelta(minutes=1))
    oncall.check_incidents(deps.pool, deps.settings, later + deps.settings.failure_rate_window + timedelta(minutes=2))
    replies = _wait_for(slack, ALERTS_CHANNEL, lambda ms: any(m["text"].startswith("✅ Recovered") for m in ms))
    print(message(next(m for m in replies if m["text"].startswith("✅ Recovered"))))
    print("  (one alert for the incident, one recovery message; nothing in between)")


def _wait_until_applied(deps) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with psycopg.connect(deps.settings.database_url) as conn:
            left = conn.execute("SELECT count(*) FROM stripe_events WHERE status IN ('pending', 'failed')").fetchone()
        if left[0] == 0:
            return
        time.sleep(0.1)
    raise RuntimeError("the worker did not apply the events in time")


def _wait_for_refund(stripe_api: StripeStandIn, request_id: str) -> dict:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for event in stripe_api.events:
            obj = event["data"]["object"]
            if obj.get("object") == "refund" and (obj.get("metadata") or {}).get("refund_request_id") == request_id:
                return obj
        time.sleep(0.05)
    raise RuntimeError("no refund was created in the Stripe stand-in")


def _wait_for_view(slack: SlackStandIn) -> dict:
    calls = slack.wait_for(lambda calls: any(c.method == "views.open" for c in calls), timeout=15)
    return [c for c in calls if c.method == "views.open"][-1].args["view"]


def _seed(stripe_api: StripeStandIn) -> dict[str, str]:
    usd = stripe_api.add_payment(12000, "usd", email="jenny.rosen@example.com", description="Annual plan")
    jpy = stripe_api.add_payment(5000, "jpy", email="taro.yamada@example.jp", brand="jcb", last4="0005")
    kwd = stripe_api.add_payment(5120, "kwd", email="noor@example.com", brand="mastercard", last4="4444")
    refund = _refund(stripe_api, usd["charge"]["id"], 2000)
    stripe_api.settle_refund(refund, "succeeded")
    return {
        "usd_pi": usd["payment_intent"]["id"],
        "jpy_charge": jpy["charge"]["id"],
        "kwd_pi": kwd["payment_intent"]["id"],
        "usd_refund": refund,
    }


def _refund(stripe_api: StripeStandIn, charge: str, amount: int) -> str:
    resp = requests.post(
        f"{stripe_api.url}/v1/refunds",
        data={"charge": charge, "amount": amount},
        headers={"Authorization": f"Bearer {STRIPE_KEY}"},
        timeout=5,
    )
    resp.raise_for_status()
    return resp.json()["id"]


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(run())
