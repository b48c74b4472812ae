from __future__ import annotations

import pytest

from domain.commands import USAGE, Help, Lookup, parse


@pytest.mark.parametrize("text", [None, "", "   ", "help", "HELP", "--help", "?"])
def test_help(text: str | None) -> None:
    assert parse(text) == Help()


@pytest.mark.parametrize(
    ("text", "stripe_id", "kind"),
    [
        ("pi_3MtwBwLkdIwHu7ix28a3tqPa", "pi_3MtwBwLkdIwHu7ix28a3tqPa", "payment"),
        ("  ch_fakefakefakefakefake0001 ", "ch_fakefakefakefakefake0001", "payment"),
        ("py_1PIYLqH3aDS1dYxm", "py_1PIYLqH3aDS1dYxm", "payment"),
        ("re_3RWYCFQ8iJWBZFaM191ZqGD9", "re_3RWYCFQ8iJWBZFaM191ZqGD9", "refund"),
        ("pyr_1PIYLqH3aDS1dYxm", "pyr_1PIYLqH3aDS1dYxm", "refund"),
        ("dp_1OzgpEH4tiDZlIUaZ8iWQMsb", "dp_1OzgpEH4tiDZlIUaZ8iWQMsb", "dispute"),
        ("du_1OzgpEH4tiDZlIUaZ8iWQMsb", "du_1OzgpEH4tiDZlIUaZ8iWQMsb", "dispute"),
        ("`pi_3MtwBwLkdIwHu7ix28a3tqPa`", "pi_3MtwBwLkdIwHu7ix28a3tqPa", "payment"),
        (
            "<https://dashboard.stripe.com/test/payments/pi_3MtwBwLkdIwHu7ix28a3tqPa|link>",
            "pi_3MtwBwLkdIwHu7ix28a3tqPa",
            "payment",
        ),
        ("https://dashboard.stripe.com/acct_1/disputes/du_1OzgpEH4tiDZ", "du_1OzgpEH4tiDZ", "dispute"),
    ],
)
def test_lookup(text: str, stripe_id: str, kind: str) -> None:
    cmd = parse(text)
    assert cmd == Lookup(stripe_id)
    assert isinstance(cmd, Lookup) and cmd.kind == kind


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("xx_123456", "is not a payment, refund or dispute id"),
        ("pi_", "is not a payment"),
        ("pi_12", "is not a payment"),
        ("cus_ABC123456", "is not a payment"),
        ("pi_3MtwBwLkdIwHu7ix28a3tqPa extra words", "Just the id"),
        ("refund me 😀", "don't understand"),
        ("🙏" * 500, "don't understand"),
        ("x" * 4000, "don't understand"),
        ("<!channel> hi", "don't understand"),
    ],
)
def test_everything_else_answers_with_usage_and_a_reason(text: str, says: str) -> None:
    cmd = parse(text)
    assert isinstance(cmd, Help)
    assert cmd.problem and says in cmd.problem
    assert len(cmd.problem) < 200  # echoes are cut, whatever was typed


def test_usage_has_examples_of_every_kind() -> None:
    for prefix in ("pi_", "ch_", "re_", "dp_", "du_"):
        assert prefix in USAGE


from domain.commands import Pending, RequestRefund, Stats  # noqa: E402


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("request pi_3MtwBwLkdIwHu7ix28a3tqPa all", RequestRefund("pi_3MtwBwLkdIwHu7ix28a3tqPa")),
        ("request ch_3MtwBwLkdIwHu7ix2Xw0YB5M 25.50", RequestRefund("ch_3MtwBwLkdIwHu7ix2Xw0YB5M", "25.50")),
        (
            "request pi_3MtwBwLkdIwHu7ix28a3tqPa $1,000 duplicate charged twice",
            RequestRefund("pi_3MtwBwLkdIwHu7ix28a3tqPa", "$1,000", "duplicate", "charged twice"),
        ),
        (
            "REQUEST pi_3MtwBwLkdIwHu7ix28a3tqPa ALL fraud card stolen",
            RequestRefund("pi_3MtwBwLkdIwHu7ix28a3tqPa", None, "fraudulent", "card stolen"),
        ),
        (
            "request pi_3MtwBwLkdIwHu7ix28a3tqPa 12,50 dup twice",
            RequestRefund("pi_3MtwBwLkdIwHu7ix28a3tqPa", "12,50", "duplicate", "twice"),
        ),
        ("request pi_3MtwBwLkdIwHu7ix28a3tqPa 5.120 KWD", RequestRefund("pi_3MtwBwLkdIwHu7ix28a3tqPa", "5.120 KWD")),
        (
            "request pi_3MtwBwLkdIwHu7ix28a3tqPa 10 try again tomorrow",
            RequestRefund("pi_3MtwBwLkdIwHu7ix28a3tqPa", "10", "requested_by_customer", "try again tomorrow"),
        ),
        (
            "request pi_3MtwBwLkdIwHu7ix28a3tqPa 500 ¥ wrong size",
            RequestRefund("pi_3MtwBwLkdIwHu7ix28a3tqPa", "500", "requested_by_customer", "¥ wrong size"),
        ),
        ("pending", Pending()),
        ("stats", Stats("30d")),
        ("stats 7d", Stats("7d")),
        ("stats month", Stats("month")),
    ],
)
def test_request_pending_stats(text: str, command) -> None:
    assert parse(text) == command


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("request", "Which payment?"),
        ("request re_3MtwBwLkdIwHu7ix2hTe6NNb", "is not a payment id"),
        ("request dp_1MtwDSLkdIwHu7ixeMtz9b7q 10", "is not a payment id"),
        ("request hello", "is not a payment id"),
        ("stats forever", "One of today"),
        ("request pi_3MtwBwLkdIwHu7ix28a3tqPa 1 customer " + "x" * 2001, "too long"),
        # Everything refundable is asked for explicitly, never by leaving the amount out.
        ("request pi_3MtwBwLkdIwHu7ix28a3tqPa", "How much?"),
        ("request pi_3MtwBwLkdIwHu7ix28a3tqPa fraud card stolen", "How much?"),
        ("request pi_3MtwBwLkdIwHu7ix28a3tqPa please refund, customer is upset", "is not an amount"),
    ],
)
def test_bad_requests_explain_themselves(text: str, says: str) -> None:
    cmd = parse(text)
    assert isinstance(cmd, Help) and says in cmd.problem


# Every amount the red team typed in the amount's place: none may become a note (and so "everything").
RED_TEAM_AMOUNTS = [
    "25.5O",
    "NaN",
    "inf",
    "1e309",
    "1e2",
    "10e-1",
    "10k",
    "0x10",
    "½",
    "²",
    "10.5.5",
    "1'000",
    "ten",
    "-5",
    "+5",
    "٣",
    "1_000",
]


@pytest.mark.parametrize("amount", RED_TEAM_AMOUNTS)
def test_a_mistyped_amount_is_refused_never_read_as_a_note(amount: str) -> None:
    cmd = parse(f"request pi_3MtwBwLkdIwHu7ix28a3tqPa {amount} duplicate customer charged twice")
    assert isinstance(cmd, Help), cmd
    assert "is not an amount" in (cmd.problem or "")


@pytest.mark.parametrize("amount", ["USD10", "10USD", "$10", "€12,50", "1,234", "12,50", ".5"])
def test_amount_shapes_reach_the_currency_check(amount: str) -> None:
    cmd = parse(f"request pi_3MtwBwLkdIwHu7ix28a3tqPa {amount} duplicate")
    assert cmd == RequestRefund("pi_3MtwBwLkdIwHu7ix28a3tqPa", amount, "duplicate")
