"""When to try a delivery again: the configured delays with jitter, and ``Retry-After``."""

from __future__ import annotations

import random
from email.utils import parsedate_to_datetime

__all__ = ["MAX_RETRY_AFTER", "next_delay", "parse_retry_after"]

MAX_RETRY_AFTER = 3600.0  # a receiver may push the next attempt back by at most an hour
JITTER = 0.1  # +-10 %, so receivers that came back are not hit by every sender at once


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or an HTTP date); None
    for anything else, which is ignored (a receiver's header must never break a delivery)."""
    if not value:
        return None
    value = value.strip()
    # ASCII digits only: str.isdigit() also accepts "²", which float() refuses.
    if value.isascii() and value.isdigit():
        seconds = float(value)
    else:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - now
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def next_delay(
    delays: list[float], attempt_in_round: int, retry_after: float | None
) -> float | None:
    """Seconds until the next attempt after attempt ``attempt_in_round`` (1-based) failed;
    None when the schedule is spent. A receiver's ``Retry-After`` is a lower bound."""
    if attempt_in_round > len(delays):
        return None
    delay = delays[attempt_in_round - 1] * random.uniform(1 - JITTER, 1 + JITTER)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay
