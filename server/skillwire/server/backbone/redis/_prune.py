"""Dropping the ids of expired hashes from the sorted sets that index them.

Tasks and webhook deliveries expire with their hashes, a retention window after they finish;
the sorted sets listing them (scored by creation time in ms) are pruned of those ids before
they are counted, so that a list's total is exact, and every task index is swept now and then,
so that one nobody lists does not keep its expired ids forever. Only an id created before the
retention window may have expired, so only those are checked.

Raw Redis errors leave this module; ``RedisBackbone`` translates them (``_errors.translated``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from . import _keys as keys
from . import _scripts as scripts

__all__ = ["prune", "sweep"]


async def prune(
    client: Any,
    indexes: Sequence[str],
    hash_of: Callable[[str], str],
    retention: float,
    *,
    batch: int | None = None,
) -> None:
    """Drop from each sorted set of ``indexes`` the ids whose hash (``hash_of(id)``) is gone
    (only the ``batch`` oldest ids of each, when given): one round trip when none is old
    enough to have expired, three at most otherwise."""
    if not indexes:
        return
    cutoff = (time.time() - retention) * 1000
    pipe = client.pipeline(transaction=False)
    for index in indexes:
        if batch is None:
            pipe.zrangebyscore(index, "-inf", cutoff)
        else:
            pipe.zrangebyscore(index, "-inf", cutoff, start=0, num=batch)
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


async def sweep(client: Any, retention: float, interval: float, batch: int = 1000) -> bool:
    """Prune every task index (at most ``batch`` old ids of each), unless another process of
    the deployment did in the last ``interval`` seconds; False when it did. An index left
    empty is gone from Redis, and its name from ``INDEXES``."""
    if not await client.set(keys.INDEX_SWEEP, "1", nx=True, px=max(int(interval * 1000), 1)):
        return False
    cursor = 0
    while True:
        cursor, members = await client.sscan(keys.INDEXES, cursor, count=200)
        names = [m.decode() for m in members]
        await prune(client, names, keys.task, retention, batch=batch)
        if names:
            await client.eval(scripts.FORGET_INDEXES, 1, keys.INDEXES, *names)
        if not cursor:
            return True
