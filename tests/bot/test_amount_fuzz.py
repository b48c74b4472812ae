"""Fuzz of `/refunds request` over signed HTTP: whatever is typed, no 5xx, and no refund moves money
unless its amount is exactly what the confirmation showed."""

from __future__ import annotations

import re

import pytest
from conftest import WEBHOOK_SECRET, replace_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.money import format_amount
from messages import ids

MANAGER = "U0MANAGER1"
SHOWN = re.compile(r"^Refund (?P<money>.+?) on `(?P<pi>pi_\w+)` now\?")

AMOUNT_CHARS = st.sampled_from(list("0123456789") * 4 + list(".,'_ -+eEkOo$€¥²½٣") + ["USD", "JPY", "KWD", "all"])
AMOUNTS = st.one_of(
    st.lists(AMOUNT_CHARS, min_size=1, max_size=8).map("".join),
    st.decimals(min_value=0, max_value=10**7, places=3, allow_nan=False).map(str),
    st.integers(min_value=-5, max_value=10**9).map(lambda n: f"{n:,}"),
    st.text(max_size=12),
)


@pytest.fixture
def settings_for_fuzz(settings):
    """A manager whose every request is within the threshold: each one would run at once."""
    return replace_settings(
        settings, approvers=frozenset({"S0APPROVERS"}), approval_threshold={"usd": 10**12, "jpy": 10**12, "kwd": 10**12}
    )


TAILS = st.sampled_from(["", " duplicate", " fraud card stolen", " dup charged twice", " 12", " USD", " KWD x"])


def test_fuzzed_amounts_never_5xx_and_refund_only_what_was_shown(
    make_server_for, settings_for_fuzz, slack, stripe_api, conn
) -> None:
    desk = make_server_for(settings_for_fuzz, slack)
    stripe_api.deliver_webhooks(f"{desk.url}/webhooks/stripe", WEBHOOK_SECRET)
    payments = {c: stripe_api.add_payment(10**9, c)["payment_intent"]["id"] for c in ("usd", "jpy", "kwd")}
    shown_by_draft: dict[str, tuple[str, str]] = {}
    confirmed: list[tuple[str, str]] = []

    @settings(
        max_examples=1000,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(currency=st.sampled_from(sorted(payments)), amount=AMOUNTS, tail=TAILS, confirm=st.booleans())
    def one(currency: str, amount: str, tail: str, confirm: bool) -> None:
        resp, key = desk.slash(f"request {payments[currency]} {amount}{tail}", user_id=MANAGER)
        assert resp.status_code < 500, resp.text
        if "Checking" not in resp.text:
            return  # answered at once: a usage message saying what was wrong
        desk.slack.wait_for(lambda calls: any(c.key == key for c in calls), timeout=15)
        answer = desk.slack.responses(key)[-1]
        found = SHOWN.match(answer["text"])
        if not found:
            assert answer["text"].startswith(("Not requested", "Request #")), answer["text"]
            return
        [draft] = [
            e["value"]
            for b in answer["blocks"]
            if b["type"] == "actions"
            for e in b["elements"]
            if e["action_id"] == ids.CONFIRM_REFUND
        ]
        conn.rollback()
        stored = conn.execute("SELECT amount, currency FROM refund_drafts WHERE id = %s", (draft,)).fetchone()
        assert stored is not None and format_amount(stored[0], stored[1]) == found["money"]
        shown_by_draft[draft] = (found["money"], currency)
        if confirm and len(confirmed) < 40:
            _, click = desk.click(ids.CONFIRM_REFUND, draft, user=MANAGER)
            desk.slack.wait_for(lambda calls: any(c.key == click for c in calls), timeout=15)
            if desk.slack.responses(click)[0]["text"].startswith("Request #"):
                confirmed.append(shown_by_draft[draft])

    one()
    stripe_api.flush_webhooks()
    created = sorted(
        format_amount(
            int(r["params"]["amount"]), next(c for c, pi in payments.items() if pi == r["params"]["payment_intent"])
        )
        for r in stripe_api.requests
        if r["method"] == "POST"
        and r["path"] == "/v1/refunds"
        and r["status"] == 200
        and not r.get("idempotent_replayed")
    )
    assert created == sorted(money for money, _ in confirmed)
    assert confirmed, "the fuzz confirmed at least one refund"
