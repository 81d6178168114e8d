"""Task records on Redis: creating a task (its hash, log, indexes and work in one step),
viewing one, and paging the indexes a filtered list reads; the sweeper that prunes them.

A task joining a session is created by the session's script (``RedisSessions``); every other
task in one MULTI/EXEC, behind a WATCH of its idempotency key when it has one.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Any

from redis.exceptions import WatchError

from skillwire.protocol import (
    BackboneUnavailable,
    Event,
    Task,
    TaskStatus,
    decode_task,
    encode,
)

from .._base import Idempotency, StoredTask, WorkItem
from . import _keys as keys
from . import _scripts as scripts
from ._batching import CommandBatcher
from ._errors import translated
from ._prune import prune, sweep
from ._sessions import RedisSessions

__all__ = ["RedisTasks"]

log = logging.getLogger("skillwire.redis")


class RedisTasks:
    """Tasks' hashes and the indexes that list them."""

    def __init__(
        self,
        client: Any,
        batcher: CommandBatcher,
        sessions: RedisSessions,
        *,
        retention: int,
    ) -> None:
        self._client = client
        self._batcher = batcher
        self._sessions = sessions
        self._retention = retention

    async def create_task(
        self,
        task: Task,
        first_event: Event,
        *,
        owner: str,
        webhook_url: str | None,
        work: list[WorkItem],
        idempotency: Idempotency | None = None,
    ) -> tuple[str, str] | None:
        task_id = task.task_id
        created_ms = int(time.time() * 1000)
        head = encode({"task_id": task_id, "app": task.app, "skill": task.skill})[1:-1]
        mapping: dict[str, Any] = {
            "head": head,
            "created_at": encode(task.created_at),
            "meta": encode(task.metadata),
            "links": encode(task.links),
            "owner": owner,
            "webhook_url": webhook_url or "",
            "status": task.status.value,
            "updated_at": task.updated_at,
            "finished_at": "",
            "error": b"null",
            "last_seq": task.last_seq,
            "n": len(task.requests),
            "done": 0,
            "ob": 0,  # bytes of every output held
            "oc": 0,  # outputs emitted: the next one's emission order
            "ix": keys.index_prefix(owner),  # the owner's filter indexes (see _keys)
            "cms": created_ms,  # the score of its id in every index
        }
        for i in range(len(task.requests)):
            mapping[f"s:{i}"] = "queued"
            mapping[f"p:{i}"] = "0.0"
            mapping[f"e:{i}"] = b"null"
            mapping[f"d:{i}"] = 0  # outputs dropped (see _outputs)
            mapping[f"r:{i}"] = b"null"  # the result (request.completed's data)
        if task.parent_task_id is not None:
            mapping["parent"] = task.parent_task_id
        if task.session_id is not None:
            # A task joining a session: created with its session's entries in one script,
            # which checks the session is open and keeps the idempotency key in the same step.
            mapping["session"] = task.session_id
            async with translated():
                return await self._sessions.create_task(
                    task,
                    first_event,
                    mapping,
                    owner=owner,
                    created_ms=created_ms,
                    indexes=[keys.INDEXES, *_indexes(owner, task)],
                    work=[encode(item) for item in work],
                    idempotency=idempotency,
                )
        async with translated(), self._client.pipeline(transaction=True) as pipe:
            while True:
                if idempotency is not None:
                    # WATCH, then one MULTI/EXEC for the key and the task: both or neither.
                    idem_key = keys.idempotency(idempotency.key)
                    await pipe.watch(idem_key)
                    earlier = await pipe.get(idem_key)
                    if earlier is not None:
                        await pipe.reset()
                        earlier_id, _, earlier_fingerprint = earlier.decode().partition(" ")
                        return earlier_id, earlier_fingerprint
                    pipe.multi()
                    pipe.set(
                        idem_key,
                        f"{task_id} {idempotency.fingerprint}",
                        ex=max(int(idempotency.ttl), 1),
                    )
                pipe.hset(keys.task(task_id), mapping=mapping)
                pipe.expire(keys.task(task_id), self._retention)
                pipe.xadd(
                    keys.events(task_id),
                    {"t": first_event.type.value, "e": encode(first_event)},
                    id=f"{first_event.seq}-0",
                )
                pipe.expire(keys.events(task_id), self._retention)
                indexes = [keys.INDEXES, *_indexes(owner, task)]
                pipe.eval(scripts.INDEX, len(indexes), *indexes, created_ms, task_id)
                for item in work:
                    pipe.xadd(keys.WORK, {"w": encode(item)})
                try:
                    await pipe.execute()
                except WatchError:
                    continue  # another call took the key meanwhile: read what it stored
                return None

    async def get_task(self, task_id: str) -> StoredTask | None:
        async with translated():
            found = await self._batcher.script(
                scripts.VIEW, [keys.task(task_id)], [keys.output_prefix(task_id)], repeatable=True
            )
        if found is None:
            return None
        json, owner, webhook = found
        return StoredTask(decode_task(json), owner.decode(), webhook.decode() or None)

    async def list_tasks(
        self,
        *,
        owner: str | None,
        status: TaskStatus | None,
        app: str | None,
        skill: str | None,
        limit: int,
        offset: int,
    ) -> tuple[list[Task], int]:
        if status is None and app is None and skill is None:
            indexes = [keys.TASKS if owner is None else keys.owner_tasks(owner)]
        else:
            indexes = _filters(owner, status, app, skill)
        async with translated():
            await prune(self._client, indexes, keys.task, self._retention)
            if len(indexes) == 1:
                # One index: its count, and the page straight from it (one MULTI, so the
                # total and the page are the same moment's).
                pipe = self._client.pipeline(transaction=True)
                pipe.zcard(indexes[0])
                pipe.zrevrange(indexes[0], offset, offset + limit - 1)
                total, ids = await pipe.execute()
            else:
                # Several filters: their indexes' intersection, counted and paged in one MULTI.
                scratch = keys.scratch(secrets.token_hex(8))
                pipe = self._client.pipeline(transaction=True)
                pipe.zinterstore(scratch, indexes, aggregate="MAX")
                pipe.zrevrange(scratch, offset, offset + limit - 1)
                pipe.delete(scratch)
                total, ids, _ = await pipe.execute()
            # An id whose task expired since the prune drops out of the page (not the total).
            tasks = await self._views([i.decode() for i in ids], indexes)
        return tasks, total

    async def sweep_forever(self, interval: float) -> None:
        """Prune the task indexes every sweep interval (one process of the deployment does)."""
        while True:
            await asyncio.sleep(interval)
            try:
                async with translated():
                    await sweep(self._client, self._retention, interval)
            except BackboneUnavailable as exc:
                log.debug("task index sweep skipped: %s", exc)

    async def _views(self, task_ids: list[str], indexes: list[str]) -> list[Task]:
        # Together, so that the batcher sends the page's scripts in one round trip.
        found = await asyncio.gather(*(self.get_task(task_id) for task_id in task_ids))
        tasks = [stored.task for stored in found if stored is not None]
        gone = [task_id for task_id, stored in zip(task_ids, found, strict=True) if stored is None]
        if gone:
            for index in indexes:
                await self._client.zrem(index, *gone)
        return tasks


def _indexes(owner: str, task: Task) -> list[str]:
    """The indexes a new task enters: every task's list and its owner's, and the filter
    indexes of each."""
    filters = [
        index
        for scope in (None, owner)
        for index in (
            keys.status_tasks(scope, task.status.value),
            keys.app_tasks(scope, task.app),
            keys.skill_tasks(scope, task.skill),
        )
    ]
    return [keys.TASKS, keys.owner_tasks(owner), *filters]


def _filters(
    owner: str | None, status: TaskStatus | None, app: str | None, skill: str | None
) -> list[str]:
    """The indexes whose intersection is the tasks a filtered list holds."""
    indexes = []
    if status is not None:
        indexes.append(keys.status_tasks(owner, status.value))
    if app is not None:
        indexes.append(keys.app_tasks(owner, app))
    if skill is not None:
        indexes.append(keys.skill_tasks(owner, skill))
    return indexes
