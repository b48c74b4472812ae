"""The lookup answer is hand-built for speed; here slack_sdk's own models prove it is valid Block Kit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import factories
import pytest
from slack_sdk.models.blocks import Block

from domain.models import Payment, PaymentView
from messages.blocks import payment_blocks, usage_blocks

T = datetime(2026, 11, 1, tzinfo=UTC)


def _payment(**kw) -> Payment:
    base = dict(
        amount=5000,
        amount_captured=5000,
        amount_refunded=1000,
        customer_id="cus_1",
        customer_email="a<b>@example.com",
        card_brand="visa",
        card_last4="4242",
        description="Order #12 & more",
    )
    return factories.payment(**{**base, **kw})


REFUNDS = tuple(
    factories.refund(id=f"re_{i}", amount=100, status=s, reason="duplicate", failure_reason=f)
    for i, (s, f) in enumerate([("succeeded", None), ("failed", "expired_or_canceled_card"), ("pending", None)] * 7)
)
DISPUTE = factories.dispute(amount=5000, evidence_due_by=T + timedelta(days=7), owner="U0OWNER")


@pytest.mark.parametrize(
    "view",
    [
        PaymentView(_payment()),
        PaymentView(
            _payment(account="acct_1", livemode=True, description=None, card_last4=None),
            REFUNDS,
            (DISPUTE,),
            (factories.request_summary(id=4, amount=300, requested_by="U0AGENT"),),
            focus="re_1",
        ),
        PaymentView(
            _payment(
                status="requires_payment_method",
                amount_captured=0,
                amount_refunded=0,
                failure_code="card_declined",
                failure_message="Your card was declined.",
                payment_intent_id=None,
                id="ch_1",
            )
        ),
    ],
)
def test_lookup_answer_is_valid_block_kit(view: PaymentView) -> None:
    blocks = payment_blocks(view, now=T + timedelta(hours=2))
    assert len(blocks) <= 50
    for block in blocks:
        parsed = Block.parse(block)
        parsed.validate_json()
        assert parsed.to_dict() == block
    assert "a&lt;b&gt;@example.com" in str(blocks)  # mrkdwn control characters are escaped
    if view.payment.description:
        assert "Order #12 &amp; more" in str(blocks)


def test_usage_is_valid_block_kit() -> None:
    for block in usage_blocks("`x` is not an id"):
        parsed = Block.parse(block)
        parsed.validate_json()
        assert parsed.to_dict() == block
