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


# Slack errors that say "this message will never be accepted as it is". Everything else (rate
# limits, outages, and configuration problems such as a revoked token or a bot not yet invited to
# the channel) is retried with backoff, so fixing the configuration delivers what waited.
SLACK_MESSAGE_ERRORS = frozenset(
    {
        "invalid_blocks",
        "invalid_blocks_format",
        "msg_too_long",
        "no_text",
        "too_many_attachments",
        "invalid_attachments",
        "invalid_arguments",
        "invalid_json",
        "json_not_object",
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
        "thread_not_found",
        "invalid_metadata_format",
        "invalid_metadata_schema",
    }
)


def slack_error_is_permanent(error: str) -> bool:
    """Whether a Slack `ok: false` error means the message itself is wrong (dead-letter it now)."""
    return error in SLACK_MESSAGE_ERRORS
