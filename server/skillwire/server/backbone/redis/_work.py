"""The work queue on Redis: one stream read by one consumer group, at least once.

A running worker keeps renewing its items' lease (``touch``); an item whose lease lapses is
reclaimed by another worker. When the group is gone (Redis restarted without persistence or
was flushed: NOGROUP), it is recreated and the id secret put back, so work queued since is
delivered and old ids still verify.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from sys import intern
from typing import Any

import msgspec
from redis.exceptions import ResponseError

from skillwire.protocol import encode

from .._base import Claim, WorkItem
from . import _keys as keys
from ._batching import CommandBatcher
from ._errors import translated

__all__ = ["RedisWork"]

log = logging.getLogger("skillwire.redis")

_work_decoder = msgspec.json.Decoder(WorkItem)


class RedisWork:
    """The work stream and its consumer group: claims, leases, acks and the queue's stats."""

    def __init__(
        self,
        client: Any,
        blocking: Any,
        batcher: CommandBatcher,
        lease_ms: int,
        restore_secret: Callable[[], Awaitable[None]],
    ) -> None:
        self._client = client
        self._blocking = blocking
        self._batcher = batcher
        self._lease_ms = lease_ms
        self._restore_secret = restore_secret
        self._last_reclaim = 0.0

    async def ensure_group(self) -> None:
        async with translated():
            try:
                await self._client.xgroup_create(keys.WORK, keys.WORK_GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def recreate_group(self, noticed_by: str) -> None:
        """The work stream's consumer group is gone: Redis restarted without persistence or
        was flushed. Recreated from the stream's start, so work queued since is delivered."""
        log.warning(
            "redis lost its data (the work queue's consumer group is gone, noticed by %s): "
            "recreating it; tasks stored before the loss are gone",
            noticed_by,
        )
        await self.ensure_group()
        await self._restore_secret()

    async def work_group(self) -> dict[Any, Any] | None:
        """The work stream's consumer group as XINFO GROUPS tells it, or None when missing."""
        try:
            groups = await self._client.xinfo_groups(keys.WORK)
        except ResponseError as exc:
            if "no such key" not in str(exc):
                raise
            return None
        return next((g for g in groups if g["name"] == keys.WORK_GROUP.encode()), None)

    async def claim(self, consumer: str, count: int, timeout: float) -> list[Claim]:
        async with translated():
            try:
                return await self._claim(consumer, count, timeout)
            except ResponseError as exc:
                # Both the reclaim and the read: a worker whose backoff grew past half the
                # lease (Redis was down a while) reclaims on every call and never reads, so a
                # reclaim that does not recover leaves it failing forever.
                if not _group_gone(exc):
                    raise
                await self.recreate_group(f"the worker {consumer}")
                return []

    async def _claim(self, consumer: str, count: int, timeout: float) -> list[Claim]:
        """Items whose lease lapsed (checked every half lease), else new work (blocking)."""
        now = time.monotonic()
        if now - self._last_reclaim > self._lease_ms / 2000:
            self._last_reclaim = now
            _, reclaimed, _ = await self._client.xautoclaim(
                keys.WORK, keys.WORK_GROUP, consumer, self._lease_ms, "0-0", count=count
            )
            live = [(entry_id, fields) for entry_id, fields in reclaimed if fields]
            if live:
                counts = await self._delivery_counts([entry_id for entry_id, _ in live])
                return [_claim(i, fields, counts.get(i, 2)) for i, fields in live]
        found = await self._blocking.xreadgroup(
            keys.WORK_GROUP,
            consumer,
            {keys.WORK: ">"},
            count=count,
            block=max(int(timeout * 1000), 1),
        )
        if not found:
            return []
        return [_claim(entry_id, fields, 1) for entry_id, fields in found[0][1]]

    async def _delivery_counts(self, entry_ids: list[bytes]) -> dict[bytes, int]:
        """How often each pending entry was delivered (a lost worker's item comes back)."""
        ordered = sorted(entry_ids, key=lambda i: tuple(int(p) for p in i.split(b"-")))
        pending = await self._client.xpending_range(
            keys.WORK, keys.WORK_GROUP, min=ordered[0], max=ordered[-1], count=10_000
        )
        wanted = set(entry_ids)
        return {
            p["message_id"]: int(p["times_delivered"]) for p in pending if p["message_id"] in wanted
        }

    async def touch(self, consumer: str, claims: list[Claim]) -> None:
        if not claims:
            return
        async with translated():
            try:
                await self._client.xclaim(
                    keys.WORK,
                    keys.WORK_GROUP,
                    consumer,
                    0,
                    [c.token for c in claims],
                    justid=True,
                )
            except ResponseError as exc:
                if not _group_gone(exc):
                    raise
                await self.recreate_group(f"the worker {consumer}")

    async def ack(self, claim: Claim) -> None:
        # Two commands in the shared batch rather than a MULTI on a connection of its own: a
        # thousand tasks finishing together must not queue for the pool. Acked is what counts;
        # an entry whose XDEL was lost with the connection is history, never delivered again.
        async with translated():
            await asyncio.gather(
                self._batcher.command(
                    "XACK", keys.WORK, keys.WORK_GROUP, claim.token, repeatable=True
                ),
                self._batcher.command("XDEL", keys.WORK, claim.token, repeatable=True),
            )

    async def requeue(self, claim: Claim) -> None:
        async with translated():
            pipe = self._client.pipeline(transaction=True)
            pipe.xadd(keys.WORK, {"w": encode(claim.item)})
            pipe.xack(keys.WORK, keys.WORK_GROUP, claim.token)
            pipe.xdel(keys.WORK, claim.token)
            await pipe.execute()

    async def queue_stats(self) -> tuple[int, float]:
        """Work items waiting (not yet claimed), and the age in seconds of the oldest one."""
        async with translated():
            group = await self.work_group()
            if group is None:
                # Redis lost its data and the group is not back yet: whatever the stream
                # holds waits (none of it was delivered), rather than a reassuring 0.
                lag, start = await self._client.xlen(keys.WORK), "-"
            else:
                lag, start = group.get("lag") or 0, f"({group['last-delivered-id'].decode()}"
            oldest = 0.0
            if lag:
                entries = await self._client.xrange(keys.WORK, start, "+", count=1)
                if entries:
                    oldest = max(time.time() - int(entries[0][0].split(b"-")[0]) / 1000, 0.0)
        return int(lag), oldest


def _group_gone(exc: ResponseError) -> bool:
    """The work group (or its stream) is missing: NOGROUP, or UNBLOCKED when the stream was
    deleted under a worker blocked reading it."""
    return str(exc).startswith(("NOGROUP", "UNBLOCKED"))


def _claim(entry_id: bytes, fields: dict[bytes, bytes], deliveries: int) -> Claim:
    item = _work_decoder.decode(fields[b"w"])
    # Names shared by every item of a skill, held once: a worker keeps each claim it runs.
    item.app, item.skill, item.owner = intern(item.app), intern(item.skill), intern(item.owner)
    return Claim(item=item, token=entry_id.decode(), deliveries=deliveries)
