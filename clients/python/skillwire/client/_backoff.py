"""Exponential backoff with jitter, for retried requests and stream reconnects."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(frozen=True)
class Backoff:
    """Delays of ``initial * factor**attempt`` seconds, capped at ``maximum``, jittered.

    ``jitter`` is the randomised share of each delay: 1.0 draws it uniformly from
    ``[0, delay]`` ("full jitter", which spreads a crowd of clients reconnecting to a restarted
    server best); 0.0 gives the exact delays.
    """

    initial: float = 0.2
    maximum: float = 10.0
    factor: float = 2.0
    jitter: float = 1.0

    def __post_init__(self) -> None:
        if self.initial < 0 or self.maximum < 0 or self.factor < 1:
            raise ValueError("Backoff needs initial >= 0, maximum >= 0 and factor >= 1")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("Backoff.jitter must be within 0..1")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """The delay before retry number ``attempt`` (0 for the first retry)."""
        base = min(self.maximum, self.initial * self.factor ** min(attempt, 64))
        spread = base * self.jitter
        return base - spread + (rng or random).uniform(0.0, spread)
