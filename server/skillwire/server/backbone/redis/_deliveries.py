"""Webhook deliveries on Redis: a due-time sorted set, a leased 'claimed' set, a hash each.

Creation happens inside the APPEND and CANCEL scripts, atomically with the terminal event
(``creation_keys``/``creation_args`` are their webhook part). Claims are one Lua script, so
two processes never claim the same attempt; a claim whose lease lapses is claimed again as the
next attempt, and only the claim holding the current attempt may record its outcome.

Raw Redis errors leave this module; ``RedisBackbone`` translates them (``_errors.translated``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis.asyncio as aioredis

from skillwire.protocol import Conflict, DeliveryStatus, NotFound

from .._base import DeliveryRecord
from .._deliveries import delivery_id_prefix
from . import _keys as keys
from . import _scripts as scripts
from ._prune import prune

__all__ = ["RedisDeliveries", "creation_args", "creation_keys"]

ScriptRunner = Callable[[str, list[str], list[Any]], Awaitable[Any]]  # source, keys, args


def creation_keys() -> list[str]:
    return [keys.DELIVERIES_DUE, keys.deliveries(DeliveryStatus.PENDING)]


def creation_args(task_id: str, now: float, urls: Sequence[str]) -> list[Any]:
    return [int(now * 1000), keys.DELIVERY_PREFIX, delivery_id_prefix(task_id), *urls]


def _record(flat: Any) -> DeliveryRecord:
    """A delivery from its hash, as HGETALL answers (a dict) or a Lua script returns it."""
    if isinstance(flat, list):
        flat = dict(zip(flat[::2], flat[1::2], strict=True))
    fields = {k.decode(): v for k, v in flat.items()}
    next_at = fields["next_at"].decode()
    return DeliveryRecord(
        id=fields["id"].decode(),
        url=fields["url"].decode(),
        task_id=fields["task_id"].decode(),
        type=fields["type"].decode(),
        status=DeliveryStatus(fields["status"].decode()),
        payload=fields["payload"],
        created_at=int(fields["created_at"]) / 1000,
        attempts=int(fields["attempts"]),
        round_start=int(fields["round"]),
        last_error=fields["last_error"].decode() or None,
        next_attempt_at=int(float(next_at)) / 1000 if next_at else None,
    )


def _status_keys() -> list[str]:
    return [keys.deliveries(s) for s in DeliveryStatus]


class RedisDeliveries:
    def __init__(self, client: aioredis.Redis, script: ScriptRunner, retention: int) -> None:
        self._client = client
        self._script = script
        self._retention = retention

    async def claim(self, count: int, lease: float) -> tuple[list[DeliveryRecord], float | None]:
        claimed, next_due = await self._script(
            scripts.CLAIM_DELIVERIES,
            [keys.DELIVERIES_DUE, keys.DELIVERIES_CLAIMED],
            [int(time.time() * 1000), max(int(lease * 1000), 1), count, keys.DELIVERY_PREFIX],
        )
        due = float(next_due) / 1000 if next_due else None
        return [_record(flat) for flat in claimed], due

    async def finish(
        self,
        delivery_id: str,
        attempt: int,
        *,
        delivered: bool,
        error: str | None,
        retry_at: float | None,
    ) -> bool:
        if delivered:
            outcome = "delivered"
        elif retry_at is None:
            outcome = "failed"
        else:
            outcome = "retry"
        done = await self._script(
            scripts.FINISH_ATTEMPT,
            [
                keys.delivery(delivery_id),
                keys.DELIVERIES_DUE,
                keys.DELIVERIES_CLAIMED,
                *_status_keys(),
            ],
            [
                delivery_id,
                attempt,
                outcome,
                "" if delivered else (error or ""),
                int((retry_at or 0) * 1000),
                self._retention,
            ],
        )
        return bool(done)

    async def retry(self, delivery_id: str) -> DeliveryRecord:
        result = await self._script(
            scripts.RETRY_DELIVERY,
            [
                keys.delivery(delivery_id),
                keys.DELIVERIES_DUE,
                keys.DELIVERIES_CLAIMED,
                *_status_keys(),
            ],
            [delivery_id, int(time.time() * 1000)],
        )
        if result[0] == b"missing":
            raise NotFound(f"delivery {delivery_id} not found", details={"id": delivery_id})
        if result[0] == b"inflight":
            raise Conflict(
                f"delivery {delivery_id} is being attempted right now", details={"id": delivery_id}
            )
        return _record(result[1])

    async def get(self, delivery_id: str) -> DeliveryRecord | None:
        found: Any = await self._client.hgetall(keys.delivery(delivery_id))
        return _record(found) if found else None

    async def list(
        self, status: DeliveryStatus | None, limit: int, offset: int
    ) -> tuple[list[DeliveryRecord], int]:
        statuses = list(DeliveryStatus) if status is None else [status]
        # A pending delivery's hash never expires: only the finished ones' indexes are pruned.
        finished = [keys.deliveries(s) for s in statuses if s is not DeliveryStatus.PENDING]
        await prune(self._client, finished, keys.delivery, self._retention)
        # One MULTI across the status indexes: a delivery that moves from pending to delivered
        # meanwhile is seen in exactly one of them, never counted twice.
        pipe = self._client.pipeline(transaction=True)
        for one in statuses:
            pipe.zcard(keys.deliveries(one))
            pipe.zrevrange(keys.deliveries(one), 0, offset + limit - 1, withscores=True)
        replies: list[Any] = await pipe.execute()
        total = sum(replies[0::2])
        ranked: list[tuple[float, bytes]] = []
        for top in replies[1::2]:
            ranked.extend((score, delivery_id) for delivery_id, score in top)
        ranked.sort(reverse=True)
        page = [delivery_id.decode() for _, delivery_id in ranked[offset : offset + limit]]
        pipe = self._client.pipeline(transaction=False)
        for delivery_id in page:
            pipe.hgetall(keys.delivery(delivery_id))
        found = await pipe.execute() if page else []
        return [_record(flat) for flat in found if flat], total
