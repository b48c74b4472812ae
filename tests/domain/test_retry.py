from __future__ import annotations

from datetime import timedelta

import pytest

from domain.retry import backoff, gives_up, slack_error_is_permanent


@pytest.mark.parametrize(
    ("attempts", "seconds"),
    [(0, 0), (1, 15), (2, 30), (3, 60), (8, 1920), (9, 3600), (30, 3600)],
)
def test_backoff_doubles_up_to_the_cap(attempts: int, seconds: float) -> None:
    assert backoff(attempts, base=15, cap=3600) == timedelta(seconds=seconds)


def test_jitter_only_stretches() -> None:
    assert backoff(3, base=15, cap=3600, jitter=0.999) < timedelta(seconds=60 * 1.25)
    assert backoff(3, base=15, cap=3600, jitter=0.5) > backoff(3, base=15, cap=3600)


@pytest.mark.parametrize(("attempts", "maximum", "dead"), [(7, 8, False), (8, 8, True), (9, 8, True), (1, 1, True)])
def test_gives_up_at_the_maximum(attempts: int, maximum: int, dead: bool) -> None:
    assert gives_up(attempts, maximum) is dead


@pytest.mark.parametrize(
    ("error", "permanent"),
    [
        ("invalid_blocks", True),
        ("msg_too_long", True),
        ("no_text", True),
        ("ratelimited", False),
        ("internal_error", False),
        ("invalid_auth", False),
        ("token_revoked", False),
        ("not_in_channel", False),
        ("channel_not_found", False),
        ("some_new_error", False),
    ],
)
def test_only_message_errors_are_permanent(error: str, permanent: bool) -> None:
    assert slack_error_is_permanent(error) is permanent
