"""When to try again, and when to give up: pure, so the schedule is tested as a table."""

from __future__ import annotations

from datetime import timedelta


def backoff(attempts: int, *, base: float, cap: float, jitter: float = 0.0) -> timedelta:
    """The wait after `attempts` failed tries: base·2^(attempts−1), capped, stretched by jitter in [0, 1)."""
    if attempts < 1:
        return timedelta(0)
    seconds = min(cap, base * 2 ** (attempts - 1))
    return timedelta(seconds=seconds * (1 + 0.25 * jitter))


def gives_up(attempts: int, max_attempts: int) -> bool:
    """Whether `attempts` failures exhaust the allowance (the item is then dead-lettered)."""
    return attempts >= max_attempts


# Slack errors that say "try later" rather than "this message is wrong".
SLACK_RETRYABLE = frozenset({
    "ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable", "request_timeout",
    "team_added_to_org", "accesslimited",
})


def slack_error_is_permanent(error: str) -> bool:
    """Whether a Slack `ok: false` error means the message will never be accepted as it is."""
    return error not in SLACK_RETRYABLE
