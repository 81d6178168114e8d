"""Dropping the ids of expired hashes from the sorted sets that index them.

Tasks and webhook deliveries expire with their hashes, a retention window after they finish;
the sorted sets listing them (scored by creation time in ms) are pruned of those ids before
they are counted, so that a list's total is exact. Only an id created before the retention
window may have expired, so only those are checked.

Raw Redis errors leave this module; ``RedisBackbone`` translates them (``_translated``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["prune"]


async def prune(
    client: Any, indexes: Sequence[str], hash_of: Callable[[str], str], retention: float
) -> None:
    """Drop from each sorted set of ``indexes`` the ids whose hash (``hash_of(id)``) is gone:
    one round trip when none is old enough to have expired, three at most otherwise."""
    if not indexes:
        return
    cutoff = (time.time() - retention) * 1000
    pipe = client.pipeline(transaction=False)
    for index in indexes:
        pipe.zrangebyscore(index, "-inf", cutoff)
    olds: list[list[bytes]] = await pipe.execute()
    candidates = [(index, i) for index, old in zip(indexes, olds, strict=True) for i in old]
    if not candidates:
        return
    pipe = client.pipeline(transaction=False)
    for _, member in candidates:
        pipe.exists(hash_of(member.decode()))
    alive = await pipe.execute()
    pipe = client.pipeline(transaction=False)
    for (index, member), exists in zip(candidates, alive, strict=True):
        if not exists:
            pipe.zrem(index, member)
    if len(pipe):
        await pipe.execute()
