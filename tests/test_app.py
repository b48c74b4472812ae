"""The web process: Slack signature checks, health and readiness, errors without stack traces."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import psycopg
import pytest
import requests
from conftest import LiveServer, replace_settings, with_database
from support import wait_until

from standins.signing import slack_headers, slash_command_body
from standins.slack_api import SlackStandIn
from store import embedded, migrate


def _post(web: LiveServer, body: str, headers: dict) -> requests.Response:
    return web.http.post(f"{web.url}/slack/events", data=body.encode(), headers=headers, timeout=5)


@pytest.mark.parametrize(
    "tamper",
    ["wrong_secret", "stale_timestamp", "future_timestamp", "body_changed", "no_signature", "no_timestamp"],
)
def test_bad_slack_signatures_are_refused_and_no_listener_runs(
    web: LiveServer, slack: SlackStandIn, stripe_api, tamper: str
) -> None:
    body = slash_command_body("pi_3MtwBwLkdIwHu7ix28a3tqPa", response_url=slack.response_url("k"))
    secret = "not-the-secret" if tamper == "wrong_secret" else web.settings.slack_signing_secret
    ts = {"stale_timestamp": int(time.time()) - 301, "future_timestamp": int(time.time()) + 301}.get(tamper)
    headers = slack_headers(body, secret, timestamp=ts)
    if tamper == "body_changed":
        body = body.replace("pi_3Mtw", "pi_4Mtw")
    if tamper == "no_signature":
        del headers["X-Slack-Signature"]
    if tamper == "no_timestamp":
        del headers["X-Slack-Request-Timestamp"]
    resp = _post(web, body, headers)
    assert resp.status_code == 401
    assert "Traceback" not in resp.text
    time.sleep(0.2)  # give a (wrongly) started lazy listener the chance to show itself
    assert stripe_api.requests == [] and slack.calls == []


def test_the_documented_slack_signature_example_verifies() -> None:
    import json

    from slack_sdk.signature import SignatureVerifier
    from support import FIXTURES

    body = (FIXTURES / "slack/slash_command__signed_request_body__slack_docs.form").read_text()
    vector = json.loads((FIXTURES / "slack/slash_command__signed_request_headers__slack_docs.json").read_text())
    secret, headers = vector["signing_secret"], vector["headers"]
    ours = slack_headers(body, secret, timestamp=int(headers["X-Slack-Request-Timestamp"]))
    assert ours["X-Slack-Signature"] == headers["X-Slack-Signature"]
    verifier = SignatureVerifier(secret, clock=_Clock(int(ours["X-Slack-Request-Timestamp"])))
    assert verifier.is_valid(body, ours["X-Slack-Request-Timestamp"], ours["X-Slack-Signature"])


class _Clock:
    def __init__(self, now: int):
        self._now = now

    def now(self) -> float:
        return self._now


@pytest.mark.parametrize(
    "fixture",
    [
        "slash_command__bolt_python_test.form",
        "slash_command__modified_real_payload.form",
        "slash_command__org_level_app_is_enterprise_install.form",
        "slash_command__slack_docs_example.form",
    ],
)
def test_real_slash_command_payloads_are_answered(web: LiveServer, fixture: str) -> None:
    from urllib.parse import parse_qsl, urlencode

    from support import FIXTURES

    fields = dict(parse_qsl((FIXTURES / "slack" / fixture).read_text().strip(), keep_blank_values=True))
    fields["command"] = "/refunds"  # each source app had its own command name; the rest is as Slack sent it
    body = urlencode(fields)
    resp = _post(web, body, slack_headers(body, web.settings.slack_signing_secret))
    assert resp.status_code == 200
    answer = resp.json()
    assert answer["response_type"] == "ephemeral"
    if fields["text"].isdigit():  # Slack's docs example sends "94070": a request number since #11
        assert answer["text"] == f"Looking up request #{fields['text']}…"
        return
    assert "Look up a payment" in str(answer["blocks"])  # none of them is a payment id: usage


def test_healthz_and_errors_are_json(web: LiveServer) -> None:
    assert web.http.get(f"{web.url}/healthz").json() == {"status": "ok"}
    missing = web.http.get(f"{web.url}/nope")
    assert missing.status_code == 404 and missing.json()["error"] == "Not Found"
    big = web.http.post(f"{web.url}/slack/events", data=b"x" * (1024 * 1024 + 1))
    assert big.status_code == 413 and "reason" in big.json()


def test_readyz_follows_the_database_down_and_back(make_server_for, settings, slack, tmp_path: Path) -> None:
    # A private server: stopping the shared one would break tests running beside this one.
    server = embedded.server_for(tmp_path / "pg")
    url = server.get_uri()
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("CREATE DATABASE desk")
    desk = with_database(url, "desk")
    migrate.migrate(desk)
    web = make_server_for(replace_settings(settings, database_url=desk), slack)
    assert web.http.get(f"{web.url}/readyz").status_code == 200

    server.cleanup()  # stops the server
    down = web.http.get(f"{web.url}/readyz", timeout=10)
    assert down.status_code == 503 and down.json()["reason"] == "database unreachable"

    server = embedded.server_for(tmp_path / "pg")  # same data, started again; the app is not restarted
    wait_until(
        lambda: web.http.get(f"{web.url}/readyz", timeout=10).status_code == 200,
        timeout=15,
        what="readyz recovering",
        every=0.2,
    )
    server.cleanup()


def test_readyz_names_missing_migrations(make_server_for, settings, slack, pg_server_url: str, db_url: str) -> None:
    name = "empty_" + db_url.rsplit("/", 1)[1].split("?")[0]
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        web = make_server_for(replace_settings(settings, database_url=with_database(pg_server_url, name)), slack)
        resp = web.http.get(f"{web.url}/readyz")
        assert resp.status_code == 503 and "0001_initial" in resp.json()["reason"]
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_metrics_show_webhooks_and_queues(web: LiveServer) -> None:
    from support import fixture_json

    web.webhook(fixture_json("stripe/event_charge.refunded__stripe-ruby-mock.json"))
    text = web.http.get(f"{web.url}/metrics").text
    assert 'refund_desk_webhook_requests_total{outcome="stored",type="charge.refunded"}' in text
    assert 'refund_desk_stripe_events_backlog{status="pending"} 1.0' in text
    assert "refund_desk_slack_outbox_queued 0.0" in text
    assert "refund_desk_database_up 1.0" in text


def test_database_down_gives_slack_a_friendly_answer_not_a_trace(make_server_for, settings, slack, tmp_path) -> None:
    from bot import SORRY

    gone = replace_settings(settings, database_url=f"postgresql://postgres@/nowhere?host={tmp_path}")
    web = make_server_for(gone, slack)
    resp, _ = web.slash("pending")
    assert resp.status_code == 200
    assert resp.json() == {"response_type": "ephemeral", "text": SORRY}


def test_in_socket_mode_there_is_no_http_route_for_slack(make_server_for, settings, slack) -> None:
    web = make_server_for(replace_settings(settings, slack_app_token="xapp-1-socket"), slack)
    unsigned = web.http.post(f"{web.url}/slack/events", data=b"command=%2Frefunds&text=help", timeout=5)
    assert unsigned.status_code == 404
    assert web.http.get(f"{web.url}/healthz").status_code == 200


METRICS_TOKEN = "scrape-me-0123456789abcdef"


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        (f"Bearer {METRICS_TOKEN}", 200),
        (f"bearer  {METRICS_TOKEN} ", 200),  # the scheme is case-insensitive (RFC 7235)
        ("Bearer wrong-token-0123456789abcdef", 401),
        (f"Bearer {METRICS_TOKEN}x", 401),
        (f"Basic {METRICS_TOKEN}", 401),
        ("Bearer", 401),
        ("Bearer é-not-ascii", 401),  # compare_digest refuses non-ASCII text: must not become a 500
    ],
)
def test_metrics_need_the_token_when_one_is_set(
    make_server_for, settings, slack, caplog, authorization: str | None, status: int
) -> None:
    web = make_server_for(replace_settings(settings, metrics_token=METRICS_TOKEN), slack)
    headers = {"Authorization": authorization} if authorization is not None else {}
    resp = web.http.get(f"{web.url}/metrics", headers=headers, timeout=10)
    assert resp.status_code == status
    if status == 401:
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert "refund_desk_" not in resp.text and resp.json()["reason"]
    else:
        assert "refund_desk_database_up 1.0" in resp.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_the_metrics_token_guards_nothing_else(make_server_for, settings, slack) -> None:
    web = make_server_for(replace_settings(settings, metrics_token=METRICS_TOKEN), slack)
    assert web.http.get(f"{web.url}/healthz").status_code == 200
    assert web.http.get(f"{web.url}/readyz").status_code == 200
    resp, _ = web.slash("help")
    assert resp.status_code == 200
