"""The retry schedule: jittered delays, then nothing; Retry-After as a lower bound."""

from __future__ import annotations

from email.utils import formatdate

import pytest

from skillwire.server.webhooks._schedule import MAX_RETRY_AFTER, next_delay, parse_retry_after

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        (formatdate(NOW + 90, usegmt=True), 90.0),
        (formatdate(NOW - 90, usegmt=True), 0.0),  # a date in the past: no wait
        ("999999", MAX_RETRY_AFTER),  # capped at an hour
        (formatdate(NOW + 86_400, usegmt=True), MAX_RETRY_AFTER),
    ],
)
def test_retry_after_seconds_and_dates(header: str, seconds: float) -> None:
    """Retry-After as delay-seconds or an HTTP date, never negative, at most an hour."""
    assert parse_retry_after(header, NOW) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "header",
    [None, "", "soon", "-5", "1.5", "Mon, 99 Foo 2020", "²", "1²", "\u0661", "\uff11", "+5", "1e3"],
)
def test_unreadable_retry_after_is_ignored(header: str | None) -> None:
    """Anything else is no Retry-After at all."""
    assert parse_retry_after(header, NOW) is None


def test_delays_follow_the_schedule_with_ten_percent_jitter() -> None:
    """Attempt n is followed by delays[n-1] +-10 %; after the last one there is none."""
    delays = [5.0, 30.0, 300.0]
    for attempt, base in enumerate(delays, start=1):
        for _ in range(50):
            delay = next_delay(delays, attempt, None)
            assert delay is not None
            assert base * 0.9 <= delay <= base * 1.1
    assert next_delay(delays, 4, None) is None
    assert next_delay([], 1, None) is None


def test_retry_after_is_a_lower_bound() -> None:
    """A receiver's Retry-After pushes the next attempt back, never forward."""
    assert next_delay([1.0], 1, 60.0) == 60.0
    delay = next_delay([100.0], 1, 5.0)
    assert delay is not None
    assert delay >= 90.0
    assert next_delay([1.0], 2, 60.0) is None  # a spent schedule stays spent
