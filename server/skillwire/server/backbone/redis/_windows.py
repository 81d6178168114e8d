"""Rate-limit counters on Redis: one string a fixed window, counted by one Lua script.

The algorithm is the ``limits`` library's fixed window, which the gateway used before: the
first hit opens a window of the limit's length (the counter's expiry), every hit increments
it, and it is gone when the window ends. One script counts the hit and reads what is left of
the window, atomically and in one round trip shared with the process's other commands (the
backbone's batcher), where the library took three round trips on a pool of its own.

Raw Redis errors leave this module; the rate-limit service fails open on any of them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from . import _keys as keys

__all__ = ["FIXED_WINDOW", "RedisWindows"]

ScriptRunner = Callable[[str, list[str], list[Any]], Awaitable[Any]]  # source, keys, args

# KEYS[1]: the window's counter; ARGV[1]: the window's length in ms. Returns {hits, ms left}.
# A counter without an expiry (its first hit, or one that lost its TTL) opens a new window.
FIXED_WINDOW = """
local hits = redis.call('INCR', KEYS[1])
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  left = tonumber(ARGV[1])
  redis.call('PEXPIRE', KEYS[1], left)
end
return {hits, left}
"""


class RedisWindows:
    """Fixed-window counters every process on this Redis shares."""

    def __init__(self, run_script: ScriptRunner) -> None:
        self._run = run_script

    async def hit(self, name: str, window: float) -> tuple[int, float]:
        """Count one hit in ``name``'s window (``window`` seconds long): the hits counted in
        it so far, and the seconds until it ends."""
        hits, left_ms = await self._run(
            FIXED_WINDOW, [keys.rate_window(name)], [max(int(window * 1000), 1)]
        )
        return int(hits), int(left_ms) / 1000
