"""Remote skills' work on Redis: one stream per skill, read by the processes that hold a free
worker for it, and who serves what.

A process with no free worker for a remote skill offers the sub-request to that skill's
stream; every process with room for the skill reads the streams it has room for in one
blocking XREADGROUP (one reader per process, not per worker), and reads at once, without
blocking, when a slot frees. A claim is leased like the shared work queue's: a process that
dies leaves its entries pending, and another process serving the skill takes them over once
the lease lapsed (XAUTOCLAIM).

Attempts at a sub-request are counted here, so ``WORKER_LOST`` comes after as many lost
workers whichever processes they were on; and a sub-request queued with no worker anywhere has
its deadline here, for any process to enforce should the one that queued it die.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from redis.exceptions import ResponseError

from skillwire.protocol import WorkerInfo, encode

from .._base import Claim, WorkItem
from . import _keys as keys

__all__ = ["RemoteWork"]

_decoder = msgspec.json.Decoder(WorkItem)
_info_decoder = msgspec.json.Decoder(WorkerInfo)


class RemoteWork:
    def __init__(self, client: Any, blocking: Any, lease_ms: int) -> None:
        self._client = client
        self._blocking = blocking
        self._lease_ms = lease_ms
        self._groups: set[str] = set()
        self._last_reclaim: dict[str, float] = {}

    async def _ensure_group(self, key: str) -> None:
        if key in self._groups:
            return
        try:
            await self._client.xgroup_create(
                keys.remote_work(key), keys.WORK_GROUP, id="0", mkstream=True
            )
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups.add(key)

    async def offer(self, key: str, item: WorkItem) -> None:
        await self._ensure_group(key)
        await self._client.xadd(keys.remote_work(key), {"w": encode(item)})

    async def claim(self, consumer: str, wants: dict[str, int], timeout: float) -> list[Claim]:
        for key in wants:
            await self._ensure_group(key)
        claims = await self._reclaim(consumer, wants)
        if claims:
            return claims
        streams = {keys.remote_work(key): ">" for key in wants}
        count = max(min(wants.values()), 1)
        try:
            if timeout > 0:
                found = await self._blocking.xreadgroup(
                    keys.WORK_GROUP, consumer, streams, count=count, block=int(timeout * 1000)
                )
            else:
                found = await self._client.xreadgroup(
                    keys.WORK_GROUP, consumer, streams, count=count
                )
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self._groups.clear()
            return []
        prefix = len(keys.remote_work(""))
        return [
            _claim(stream.decode()[prefix:], entry_id, fields, 1)
            for stream, entries in found or []
            for entry_id, fields in entries
            if fields
        ]

    async def _reclaim(self, consumer: str, wants: dict[str, int]) -> list[Claim]:
        """Entries whose process died (lease lapsed), taken over; checked every half lease."""
        now = time.monotonic()
        claims: list[Claim] = []
        for key, count in wants.items():
            if now - self._last_reclaim.get(key, 0.0) < self._lease_ms / 2000:
                continue
            self._last_reclaim[key] = now
            _, reclaimed, _ = await self._client.xautoclaim(
                keys.remote_work(key), keys.WORK_GROUP, consumer, self._lease_ms, "0-0", count=count
            )
            claims.extend(_claim(key, i, fields, 2) for i, fields in reclaimed if fields)
        return claims

    async def touch(self, consumer: str, claims: list[Claim]) -> None:
        by_key: dict[str, list[str]] = {}
        for claim in claims:
            by_key.setdefault(claim.queue, []).append(claim.token)
        for key, tokens in by_key.items():
            await self._client.xclaim(
                keys.remote_work(key), keys.WORK_GROUP, consumer, 0, tokens, justid=True
            )

    async def ack(self, claim: Claim) -> None:
        pipe = self._client.pipeline(transaction=True)
        pipe.xack(keys.remote_work(claim.queue), keys.WORK_GROUP, claim.token)
        pipe.xdel(keys.remote_work(claim.queue), claim.token)
        item = claim.item  # done: its attempts no longer count
        pipe.delete(*(keys.remote_attempts(item.task_id, index) for index in item.indices))
        await pipe.execute()

    async def requeue(self, claim: Claim) -> None:
        stream = keys.remote_work(claim.queue)
        pipe = self._client.pipeline(transaction=True)
        pipe.xadd(stream, {"w": encode(claim.item)})
        pipe.xack(stream, keys.WORK_GROUP, claim.token)
        pipe.xdel(stream, claim.token)
        await pipe.execute()

    async def mark_serving(self, process: str, served: list[str], ttl: float) -> None:
        until = int((time.time() + ttl) * 1000)
        pipe = self._client.pipeline(transaction=False)
        for key in served:
            pipe.zadd(keys.remote_serving(key), {process: until})
            pipe.pexpire(keys.remote_serving(key), int(ttl * 1000))
        await pipe.execute()

    async def unmark_serving(self, process: str, key: str) -> None:
        await self._client.zrem(keys.remote_serving(key), process)

    async def served_anywhere(self, key: str) -> bool:
        now = int(time.time() * 1000)
        return bool(await self._client.zcount(keys.remote_serving(key), now, "+inf"))

    async def count_attempt(self, task_id: str, index: int, ttl: float, attempts: int) -> int:
        key = keys.remote_attempts(task_id, index)
        pipe = self._client.pipeline(transaction=True)
        pipe.incrby(key, attempts)
        pipe.pexpire(key, int(ttl * 1000))
        count, _ = await pipe.execute()
        return int(count)

    async def set_deadline(self, task_id: str, index: int, at: float) -> None:
        await self._client.zadd(keys.REMOTE_DEADLINES, {f"{task_id}:{index}": int(at * 1000)})

    async def take_deadline(self, task_id: str, index: int) -> float | None:
        member = f"{task_id}:{index}"
        pipe = self._client.pipeline(transaction=True)
        pipe.zscore(keys.REMOTE_DEADLINES, member)
        pipe.zrem(keys.REMOTE_DEADLINES, member)
        score, removed = await pipe.execute()
        return score / 1000 if removed and score is not None else None

    async def take_due_deadlines(self, now: float) -> list[tuple[str, int]]:
        due = await self._client.zrangebyscore(
            keys.REMOTE_DEADLINES, "-inf", int(now * 1000), start=0, num=100
        )
        if not due:
            return []
        pipe = self._client.pipeline(transaction=False)
        for member in due:
            pipe.zrem(keys.REMOTE_DEADLINES, member)
        taken: list[tuple[str, int]] = []
        for member, removed in zip(due, await pipe.execute(), strict=True):
            if removed:  # another process did not take it first
                task_id, index = member.decode().rsplit(":", 1)
                taken.append((task_id, int(index)))
        return taken

    async def put_worker(self, info: WorkerInfo, ttl: float) -> None:
        ms = int(ttl * 1000)
        pipe = self._client.pipeline(transaction=False)
        pipe.set(keys.remote_worker(info.worker_id), encode(info), px=ms)
        pipe.zadd(keys.REMOTE_WORKERS, {info.worker_id: int(time.time() * 1000) + ms})
        await pipe.execute()

    async def drop_worker(self, worker_id: str) -> None:
        pipe = self._client.pipeline(transaction=False)
        pipe.delete(keys.remote_worker(worker_id))
        pipe.zrem(keys.REMOTE_WORKERS, worker_id)
        await pipe.execute()

    async def list_workers(self) -> list[WorkerInfo]:
        await self._client.zremrangebyscore(keys.REMOTE_WORKERS, "-inf", int(time.time() * 1000))
        ids = await self._client.zrange(keys.REMOTE_WORKERS, 0, -1)
        if not ids:
            return []
        raws = await self._client.mget([keys.remote_worker(i.decode()) for i in ids])
        found = [_info_decoder.decode(raw) for raw in raws if raw]
        return sorted(found, key=lambda w: w.connected_at)


def _claim(key: str, entry_id: bytes, fields: dict[bytes, bytes], deliveries: int) -> Claim:
    return Claim(
        item=_decoder.decode(fields[b"w"]),
        token=entry_id.decode(),
        deliveries=deliveries,
        queue=key,
    )
