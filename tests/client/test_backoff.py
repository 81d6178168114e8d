"""Backoff delays: exponential, capped, jittered within bounds."""

from __future__ import annotations

import random

import pytest

from skillwire.client import Backoff


def test_delays_grow_exponentially_up_to_the_cap() -> None:
    """Without jitter the delays are initial * factor**attempt, capped at maximum."""
    backoff = Backoff(initial=0.1, maximum=1.0, factor=2.0, jitter=0.0)
    assert [backoff.delay(n) for n in range(6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_huge_attempt_numbers_stay_capped() -> None:
    """A very large attempt number does not overflow."""
    assert Backoff(jitter=0.0, maximum=5.0).delay(10_000) == 5.0


def test_full_jitter_stays_within_zero_and_the_delay() -> None:
    """With jitter=1 each delay is drawn from [0, base]."""
    backoff = Backoff(initial=1.0, maximum=8.0, jitter=1.0)
    rng = random.Random(7)
    draws = [backoff.delay(3, rng) for _ in range(200)]
    assert all(0.0 <= d <= 8.0 for d in draws)
    assert len(set(draws)) > 100


def test_partial_jitter_keeps_a_floor() -> None:
    """With jitter=0.5 a delay is never below half its base."""
    backoff = Backoff(initial=2.0, jitter=0.5)
    rng = random.Random(1)
    assert all(1.0 <= backoff.delay(0, rng) <= 2.0 for _ in range(100))


@pytest.mark.parametrize(
    "kwargs", [{"initial": -1.0}, {"factor": 0.5}, {"jitter": 1.5}, {"maximum": -2.0}]
)
def test_nonsense_is_refused(kwargs: dict[str, float]) -> None:
    """Negative delays, shrinking factors and jitter outside 0..1 raise ValueError."""
    with pytest.raises(ValueError, match="Backoff"):
        Backoff(**kwargs)
