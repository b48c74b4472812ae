"""The API's rate limit: a token bucket per key (RATE requests/s, bursts of BURST). Pure."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_LIMIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*s)?\s*(?:,?\s*burst\s*(\d+))?\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Tokens refill at `rate` per second up to `burst`; each request takes one."""

    rate: float = 10.0
    burst: int = 20


def parse_rate_limit(text: str) -> RateLimit:
    """Read `10/s`, `10/s burst 20` or `10` (burst twice the rate); ValueError when it is neither."""
    found = _LIMIT.match(text)
    if not found:
        raise ValueError(f"{text!r} is not a rate like `10/s` or `10/s burst 20`")
    rate = float(found.group(1))
    burst = int(found.group(2)) if found.group(2) else max(1, math.ceil(2 * rate))
    if rate <= 0 or burst < 1:
        raise ValueError(f"{text!r}: the rate must be above 0 and the burst at least 1")
    return RateLimit(rate, burst)


def retry_after(tokens: float, rate: float) -> int:
    """Whole seconds until a bucket holding `tokens` has one to give (at least 1, as Retry-After says)."""
    return max(1, math.ceil((1.0 - tokens) / rate)) if rate > 0 else 60
