"""The pure parts of history: the new /refunds verbs, periods, cursors, timelines, the API's rate limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.commands import Disputes, Help, History, Mine, ShowRequest, parse
from domain.history import (
    AuditEntry,
    CursorError,
    Position,
    Step,
    decode_cursor,
    encode_cursor,
    period_range,
    statuses_for,
    timeline,
)
from domain.policy import RoleConfig, is_viewer
from domain.ratelimit import RateLimit, parse_rate_limit, retry_after

OPEN = ("pending", "approved", "sent")
NOW = datetime(2026, 12, 3, 15, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("#42", ShowRequest(42)),
        ("42", ShowRequest(42)),
        ("`#7`", ShowRequest(7)),
        ("mine", Mine()),
        ("mine open", Mine(OPEN)),
        ("mine 7d succeeded", Mine(("succeeded",), "7d")),
        ("MINE last-month", Mine((), "last-month")),
        ("history", History()),
        ("history rejected 30d <@U0MANAGER1|bob>", History(("rejected",), "30d", "U0MANAGER1")),
        ("history @U0AGENT01", History((), None, "U0AGENT01")),
        ("disputes", Disputes("open")),
        ("disputes all", Disputes("all")),
    ],
)
def test_new_verbs(text: str, expected: object) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    "text",
    ["mine yesterday", "mine open open", "mine @U0AGENT01", "history 7d 30d", "disputes closed", "disputes all x", "#"],
)
def test_new_verbs_refuse_what_they_do_not_take_with_usage(text: str) -> None:
    assert isinstance(parse(text), Help) and parse(text).problem


@pytest.mark.parametrize(
    ("word", "statuses"),
    [
        ("open", OPEN),
        ("done", ("succeeded", "failed", "canceled", "rejected", "expired")),
        ("Failed", ("failed",)),
        ("x", None),
    ],
)
def test_status_words(word: str, statuses: tuple[str, ...] | None) -> None:
    assert statuses_for(word) == statuses


@pytest.mark.parametrize(
    ("period", "since", "until"),
    [
        ("today", datetime(2026, 12, 3, tzinfo=UTC), None),
        ("24h", NOW - timedelta(days=1), None),
        ("7d", NOW - timedelta(days=7), None),
        ("month", datetime(2026, 12, 1, tzinfo=UTC), None),
        ("last-month", datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)),
    ],
)
def test_periods(period: str, since: datetime, until: datetime | None) -> None:
    assert period_range(period, NOW) == (since, until)


def test_last_month_in_january_is_december() -> None:
    assert period_range("last-month", datetime(2027, 1, 15, tzinfo=UTC)) == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )


@pytest.mark.parametrize("position", [Position(NOW, "42"), Position(NOW.replace(microsecond=5), "dp_1Abc|x")])
def test_cursor_round_trip(position: Position) -> None:
    assert decode_cursor(encode_cursor(position)) == position


@pytest.mark.parametrize("cursor", ["", "!!!", "bm90IGEgY3Vyc29y", "MjAyNi0xMi0wM3w0Mg", "x" * 201])
def test_cursors_we_did_not_make_are_refused(cursor: str) -> None:
    with pytest.raises(CursorError):
        decode_cursor(cursor)


def _e(minute: int, action: str, actor: str = "U0MANAGER1", **details: object) -> AuditEntry:
    return AuditEntry(NOW + timedelta(minutes=minute), actor, "slack", action, dict(details))


@pytest.mark.parametrize(
    ("entries", "steps"),
    [
        (
            [
                _e(0, "request.created", "U0SUPPORT1"),
                _e(1, "request.approved"),
                _e(2, "refund.requested_from_stripe", "system"),
                _e(3, "request.sent", "stripe", refund="re_1"),
                _e(9, "request.succeeded", "stripe", refund="re_1"),
            ],
            [
                ("asked", "U0SUPPORT1", None),
                ("approved", "U0MANAGER1", None),
                ("sent", None, None),
                ("refund_pending", None, "re_1"),
                ("succeeded", None, "re_1"),
            ],
        ),
        (
            [_e(0, "request.created", "api:crm"), _e(5, "request.rejected", reason="not eligible")],
            [("asked", "api:crm", None), ("rejected", "U0MANAGER1", "not eligible")],
        ),
        (
            [_e(1, "refund.refused_by_stripe", "stripe", error="balance"), _e(0, "request.created"), _e(2, "x.y")],
            [("asked", "U0MANAGER1", None), ("refused", None, "balance")],
        ),
    ],
)
def test_timeline_reads_the_audit_log_in_order(entries: list[AuditEntry], steps: list[tuple]) -> None:
    assert [(s.step, s.actor, s.note) for s in timeline(entries)] == steps
    assert all(isinstance(s, Step) for s in timeline(entries))


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        ("10/s burst 20", RateLimit(10, 20)),
        ("10", RateLimit(10, 20)),
        ("2.5/s", RateLimit(2.5, 5)),
        ("100/s,burst 1", RateLimit(100, 1)),
    ],
)
def test_rate_limits(text: str, limit: RateLimit) -> None:
    assert parse_rate_limit(text) == limit


@pytest.mark.parametrize("text", ["", "fast", "0/s", "-1", "10/m"])
def test_rate_limits_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rate_limit(text)


@pytest.mark.parametrize(("tokens", "rate", "seconds"), [(0.0, 10, 1), (0.95, 10, 1), (0.0, 0.5, 2), (-3.0, 1, 4)])
def test_retry_after(tokens: float, rate: float, seconds: int) -> None:
    assert retry_after(tokens, rate) == seconds


@pytest.mark.parametrize(
    ("user", "viewers", "groups", "allowed"),
    [
        ("U0ANYONE1", None, {}, True),  # unset: everyone
        ("S0GROUP01", None, {}, False),  # a group id is never a person
        ("U0ANYONE1", frozenset({"U0VIEWER1"}), {}, False),
        ("U0VIEWER1", frozenset({"U0VIEWER1"}), {}, True),
        ("U0MEMBER1", frozenset({"S0VIEWERS"}), {"S0VIEWERS": frozenset({"U0MEMBER1"})}, True),
        ("U0MANAGER1", frozenset({"U0VIEWER1"}), {}, True),  # approvers always see what they decide
        ("U0ADMIN01", frozenset({"U0VIEWER1"}), {}, True),
    ],
)
def test_viewers(user: str, viewers: frozenset[str] | None, groups: dict, allowed: bool) -> None:
    config = RoleConfig(None, frozenset({"U0MANAGER1"}), frozenset({"U0ADMIN01"}), viewers=viewers)
    assert is_viewer(user, config, groups) is allowed
