from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from support import fixture_json

from domain.finance import (
    CATEGORIES,
    Item,
    Payout,
    RunChanges,
    above,
    category_of,
    classify,
    dashboard_link,
    day_bounds,
    month_bounds,
    newer_payout,
    parse_day,
    parse_month,
    payout_from_stripe,
    payout_total_finding,
    previous_day,
    previous_month,
    tolerance_for,
    totals,
    txn_from_stripe,
)

USD = {"usd": 500}  # the default: 5.00 USD


@pytest.mark.parametrize(
    ("txn_type", "reporting", "category"),
    [
        ("charge", "charge", "charges"),
        ("payment", "charge", "charges"),  # non-card payments (py_)
        ("refund", "refund", "refunds"),
        ("payment_refund", "refund", "refunds"),
        ("refund_failure", "refund_failure", "refund_reversals"),
        ("payment_failure_refund", "refund_failure", "refund_reversals"),
        ("adjustment", "dispute", "dispute_withdrawals"),
        ("adjustment", "dispute_reversal", "dispute_reinstatements"),
        ("dispute", "dispute", "dispute_withdrawals"),
        ("payout", "payout", "payouts"),
        ("payout_failure", "payout_reversal", "payouts"),
        ("stripe_fee", "fee", "fees"),
        ("application_fee", "platform_earning", "other"),
        ("transfer", "transfer", "other"),
        ("adjustment", "other_adjustment", "other"),
        ("something_new", None, "other"),  # a type Stripe adds tomorrow is shown, never dropped
    ],
)
def test_category_of_a_balance_transaction(txn_type, reporting, category) -> None:
    assert category_of(txn_type, reporting) == category
    assert category in CATEGORIES


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("stripe/object_balance_transaction__djstripe_dispute.json", ("dispute_withdrawals", -1000, 1500, -2500)),
        ("stripe/object_balance_transaction__openapi-fixtures3.json", ("charges", 100, 0, 100)),
    ],
)
def test_real_balance_transactions_are_read(path, expected) -> None:
    txn = txn_from_stripe(fixture_json(path))
    assert (txn.category, txn.amount, txn.fee, txn.net) == expected
    assert not txn.converted


def test_a_refund_with_its_fee_given_back_and_a_converted_charge() -> None:
    refund = txn_from_stripe(
        fixture_json("stripe/object_refund__gumroad_vcr_partial_expanded_bt.json")["balance_transaction"]
    )
    assert (refund.category, refund.amount, refund.fee, refund.net, refund.source) == (
        "refunds",
        -200,
        -4,
        -196,
        "re_2OHALt9e1RjUNIyY0zyRGTGU",
    )
    charge = fixture_json("stripe/object_charge__gumroad_vcr_connected_account_py_cad_fx.json")
    txn = txn_from_stripe(charge["balance_transaction"])
    assert txn.converted and txn.category == "charges"  # settled in another currency: not comparable


def test_the_list_page_fixture_is_read() -> None:
    page = fixture_json("stripe/list_balance_transaction__stripe_api_docs_via_airbyte.json")
    [txn] = [txn_from_stripe(obj) for obj in page["data"]]
    assert (txn.category, txn.amount, txn.source) == ("other", -400, "tr_1MiN3gLkdIwHu7ixNCZvFdgA")


@pytest.mark.parametrize(
    ("path", "status", "failure", "account"),
    [
        (
            "stripe/event_payout.failed__gitpay_connect_livemode.json",
            "failed",
            "could_not_process",
            "acct_1CdjXFAcSPl6ox0l",
        ),
        ("stripe/event_payout.paid__gitpay_connect_livemode.json", "paid", None, "acct_1CZ5vkLlCJ9CeQRe"),
        ("stripe/event_payout.paid__stripe-ruby-mock.json", "paid", None, None),
    ],
)
def test_real_payout_events_are_read(path, status, failure, account) -> None:
    event = fixture_json(path)
    obj = event["data"]["object"]
    payout = payout_from_stripe(obj, account=event.get("account"), observed_at=datetime.now(UTC))
    assert (payout.status, payout.failure_code, payout.account, payout.amount) == (
        status,
        failure,
        account,
        obj["amount"],
    )
    assert payout.automatic is obj["automatic"]
    assert payout.arrival_date == datetime.fromtimestamp(obj["arrival_date"], UTC)


def test_the_payout_object_fixture_is_read() -> None:
    payout = payout_from_stripe(
        fixture_json("stripe/object_payout__openapi-fixtures3.json"), account=None, observed_at=datetime.now(UTC)
    )
    assert (payout.id, payout.amount, payout.currency, payout.status) == (
        "po_1Pgc79B7WZ01zgkWu1KToYf4",
        1100,
        "usd",
        "in_transit",
    )


def _item(**kw) -> Item:
    base = {
        "category": "refunds",
        "currency": "usd",
        "actual": -2500,
        "expected": -2500,
        "txn_id": "txn_1",
        "source": "re_1",
        "local_currency": "usd",
        "local_amount": -2500,
        "local_status": "succeeded",
    }
    return Item(**(base | kw))


@pytest.mark.parametrize(
    ("item", "tolerances", "expected"),
    [
        (_item(), USD, None),  # matches
        (_item(expected=None, local_currency=None), USD, ("refund_not_recorded", "missed_webhook", True, -2500)),
        (
            _item(expected=None, local_currency=None, made_by_bot=False),
            USD,
            ("refund_not_recorded", "made_outside_bot", True, -2500),
        ),
        (
            _item(expected=None, local_currency=None, made_by_bot=True),
            USD,
            ("refund_not_recorded", "missed_webhook", True, -2500),
        ),
        (_item(expected=-2501), USD, ("amount_differs", "rounding", False, 1)),  # 0.01 under 5.00
        (_item(expected=-3100), USD, ("amount_differs", "changed_locally", True, 600)),  # 6.00 over 5.00
        (_item(expected=-3000), USD, ("amount_differs", "changed_locally", False, 500)),  # at the tolerance: not above
        (_item(local_currency="eur"), USD, ("currency_differs", "changed_locally", True, -2500)),
        (
            _item(category="refund_reversals", actual=2500, expected=0, local_amount=0),
            USD,
            ("refund_status_differs", "refund_failed_unseen", True, 2500),
        ),
        (
            _item(
                category="dispute_reinstatements",
                source="dp_1",
                actual=1000,
                expected=0,
                local_amount=0,
                local_status="lost",
            ),
            USD,
            ("dispute_status_differs", "dispute_won_unseen", True, 1000),
        ),
        (
            _item(category="dispute_withdrawals", source="dp_1", actual=-1000, expected=None, local_currency=None),
            USD,
            ("dispute_not_recorded", "missed_webhook", True, -1000),
        ),
        (
            _item(category="charges", source="ch_1", actual=1000, expected=None, local_currency=None),
            USD,
            ("charge_not_recorded", "missed_webhook", True, 1000),
        ),
        (
            _item(category="payouts", source="po_1", actual=-5000, expected=None, local_currency=None),
            USD,
            ("payout_not_recorded", "missed_webhook", True, -5000),
        ),
        (_item(category="fees", source=None, actual=-30, expected=-30), USD, None),  # Stripe's alone
        (_item(category="other", source="tr_1", actual=-400, expected=None), USD, None),
        (_item(converted=True, actual=-3300, expected=-3300, local_amount=-2500, local_currency="eur"), USD, None),
        (
            _item(converted=True, expected=None, local_currency=None),
            USD,
            ("refund_not_recorded", "missed_webhook", True, -2500),
        ),  # converted: presence still counts
        # No tolerance for a currency: every difference counts, to the unit.
        (
            _item(currency="jpy", actual=-500, expected=-501, local_currency="jpy"),
            USD,
            ("amount_differs", "rounding", True, 1),
        ),
        (
            _item(currency="jpy", actual=-500, expected=-501, local_currency="jpy"),
            {"jpy": 100},
            ("amount_differs", "rounding", False, 1),
        ),
        (
            _item(currency="kwd", actual=-5120, expected=-5130, local_currency="kwd"),
            USD,
            ("amount_differs", "changed_locally", True, 10),
        ),
        # Ours without Stripe: expected is what our record says left the balance.
        (
            _item(actual=0, expected=-2500, txn_id=None, local_kind="refund_missing_in_stripe"),
            USD,
            ("refund_missing_in_stripe", "refund_never_made", True, 2500),
        ),
        (
            _item(actual=0, expected=-300, txn_id=None, local_kind="request_refund_missing", request_id=7),
            USD,
            ("request_refund_missing", "refund_never_made", False, 300),
        ),
    ],
)
def test_classify(item, tolerances, expected) -> None:
    finding = classify(item, tolerances)
    if expected is None:
        assert finding is None
        return
    assert (finding.kind, finding.cause, finding.flagged, finding.difference) == expected
    assert finding.subject == item.source and finding.currency == item.currency
    assert item.source in finding.stripe_ids
    if item.request_id:
        assert f"request:{item.request_id}" in finding.stripe_ids


@pytest.mark.parametrize(
    ("difference", "currency", "tolerances", "flagged"),
    [
        (500, "usd", USD, False),
        (501, "usd", USD, True),
        (-501, "usd", USD, True),
        (1, "eur", USD, True),  # no EUR tolerance configured: none
        (0, "eur", USD, False),
        (100, "JPY", {"jpy": 100}, False),
    ],
)
def test_tolerance_is_per_currency(difference, currency, tolerances, flagged) -> None:
    assert above(difference, currency, tolerances) is flagged
    assert tolerance_for(tolerances, "gbp") == 0


def test_a_payout_that_does_not_add_up() -> None:
    assert payout_total_finding("po_1", "usd", 10_000, 10_000, USD) is None
    off = payout_total_finding("po_1", "usd", 10_000, 9_000, USD)
    assert (off.kind, off.difference, off.flagged, off.subject) == ("payout_total_differs", -1000, True, "po_1")


def test_totals_sum_per_currency_in_category_order() -> None:
    rows = [
        ("usd", "refunds", -300, -300, 2),
        ("usd", "charges", 1000, 1000, 1),
        ("jpy", "charges", 500, 500, 1),
        ("usd", "refunds", 0, -100, 0),  # a local-only refund
        ("usd", "fees", -59, -59, 0),
    ]
    jpy, usd = totals(rows)
    assert [line.category for line in usd.lines] == ["charges", "refunds", "fees"]
    assert (usd.actual, usd.expected, usd.difference) == (641, 541, 100)
    assert usd.lines[1].count == 2 and jpy.difference == 0


@pytest.mark.parametrize(
    ("text", "day"),
    [("2026-11-30", date(2026, 11, 30)), (" 2024-02-29 ", date(2024, 2, 29))],
)
def test_parse_day(text, day) -> None:
    assert parse_day(text) == day


@pytest.mark.parametrize("text", ["2026-02-30", "30/11/2026", "yesterday", "2026-11", ""])
def test_parse_day_refuses(text) -> None:
    with pytest.raises(ValueError):
        parse_day(text)


@pytest.mark.parametrize(("text", "month"), [("2026-11", (2026, 11)), ("2027-01", (2027, 1))])
def test_parse_month(text, month) -> None:
    assert parse_month(text) == month


@pytest.mark.parametrize("text", ["2026-13", "2026-00", "11-2026", "2026-11-01", "1999-12"])
def test_parse_month_refuses(text) -> None:
    with pytest.raises(ValueError):
        parse_month(text)


def test_days_and_months_run_from_utc_midnight_to_utc_midnight() -> None:
    assert day_bounds(date(2026, 11, 30)) == (datetime(2026, 11, 30, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    assert month_bounds(2026, 12) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    assert month_bounds(2024, 2)[1] - month_bounds(2024, 2)[0] == timedelta(days=29)
    assert previous_day(datetime(2026, 12, 1, 0, 30, tzinfo=UTC)) == date(2026, 11, 30)
    assert previous_month(datetime(2027, 1, 1, 2, tzinfo=UTC)) == (2026, 12)
    assert previous_month(datetime(2026, 11, 15, tzinfo=UTC)) == (2026, 10)


def _payout(status: str, at: int, amount: int = 100) -> Payout:
    when = datetime.fromtimestamp(at, UTC)
    return Payout("po_1", None, False, amount, "usd", status, True, None, None, None, when, when)


@pytest.mark.parametrize(
    ("current", "incoming", "replace"),
    [
        (None, _payout("paid", 10), True),
        (_payout("in_transit", 10), _payout("paid", 20), True),
        (_payout("paid", 20), _payout("in_transit", 30), False),  # a late in-flight snapshot never undoes paid
        (_payout("paid", 20), _payout("failed", 30), True),  # Stripe lets a paid payout fail later
        (_payout("paid", 20), _payout("paid", 10), False),  # older
        (_payout("paid", 20), _payout("paid", 20), False),  # the same
    ],
)
def test_which_payout_snapshot_wins(current, incoming, replace) -> None:
    assert newer_payout(current, incoming) is replace


@pytest.mark.parametrize(
    ("stripe_id", "livemode", "account", "url"),
    [
        ("pi_1", False, None, "https://dashboard.stripe.com/test/payments/pi_1"),
        ("dp_1", True, "acct_9", "https://dashboard.stripe.com/acct_9/disputes/dp_1"),
        ("po_1", True, None, "https://dashboard.stripe.com/payouts/po_1"),
        ("re_1", False, None, "https://dashboard.stripe.com/test/search?query=re_1"),
        ("txn_1", True, None, "https://dashboard.stripe.com/search?query=txn_1"),
    ],
)
def test_dashboard_links(stripe_id, livemode, account, url) -> None:
    assert dashboard_link(stripe_id, livemode=livemode, account=account) == url


def test_run_changes_round_trip() -> None:
    changes = RunChanges(4, (("refund_not_recorded", "re_1", "usd"),), (), 1, 0, 2)
    assert RunChanges.from_json(changes.to_json()) == changes
    assert changes.any and not RunChanges().any
