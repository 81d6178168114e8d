"""The Redis backbone: many server and worker processes sharing one Redis.

Each task mutation is one Lua script (one round trip); the log is a Redis Stream capped
at ``max_events``; live events go out on the task's pub/sub channel, and each process holds
one pub/sub connection for all its listeners (``Fanout``). Work is a stream read by one
consumer group: at least once, with a lease that a running worker keeps renewing and that
other workers take over when it lapses. Redis errors become ``BackboneUnavailable`` here
and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError, WatchError

from skillwire.protocol import (
    DEFAULT_MAX_OUTPUT_BYTES,
    DEFAULT_MAX_OUTPUTS,
    SESSION_ID_PREFIX,
    BackboneUnavailable,
    Conflict,
    DeliveryStatus,
    EncodedEvent,
    Event,
    EventType,
    IllegalTransition,
    NotFound,
    Session,
    SessionSnapshot,
    SkillDeclaration,
    Task,
    TaskStatus,
    WorkerInfo,
    decode_event,
    decode_task,
    encode,
    format_time,
    lifecycle,
    validate,
)

from .._base import (
    Backbone,
    CancelListener,
    Claim,
    DeliveryListener,
    DeliveryRecord,
    EventListener,
    Idempotency,
    LogSlice,
    StoredSession,
    StoredTask,
    WorkItem,
)
from . import _keys as keys
from . import _scripts as scripts
from ._batching import CommandBatcher
from ._connections import pool_options
from ._deliveries import RedisDeliveries, creation_args, creation_keys
from ._fanout import Fanout
from ._outputs import group_args
from ._prune import prune, sweep
from ._remote_work import RemoteWork
from ._sessions import RedisSessions
from ._windows import RedisWindows

__all__ = ["RedisBackbone"]

log = logging.getLogger("skillwire.redis")

_work_decoder = msgspec.json.Decoder(WorkItem)


@contextlib.asynccontextmanager
async def _translated() -> AsyncIterator[None]:
    """Redis and socket errors leave this module as BackboneUnavailable (503), once.

    redis-py can finish a command it was cancelled in and return normally, swallowing the
    cancellation; the caller would then wait forever where it should have stopped. A
    cancellation still pending when the command returns is raised here.
    """
    try:
        yield
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError
    except ResponseError as exc:
        if str(exc).startswith("ILLEGAL"):
            raise IllegalTransition(str(exc)[8:]) from exc
        raise BackboneUnavailable(f"redis error: {exc}") from exc
    except (RedisError, OSError) as exc:
        raise BackboneUnavailable(f"redis unavailable: {exc}") from exc
    except RuntimeError as exc:
        # uvloop refuses a write on a transport Redis has just closed (a CLIENT KILL during
        # the connection's handshake) with a RuntimeError, not an OSError: it was a 500.
        if _CLOSED_TRANSPORT not in str(exc):
            raise
        raise BackboneUnavailable(f"redis unavailable: {exc}") from exc


_CLOSED_TRANSPORT = "the handler is closed"


class RedisBackbone(Backbone):
    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        max_events: int = 10_000,
        max_outputs: int = DEFAULT_MAX_OUTPUTS,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
        retention: float = 86_400.0,
        lease: float = 30.0,
        max_connections: int = 256,
        pool_timeout: float = 10.0,
        sweep_interval: float = 60.0,
    ) -> None:
        self._url = url
        self._max_events = max_events
        self._max_outputs = max_outputs
        self._max_output_bytes = max_output_bytes
        self._retention = int(retention)
        self._lease_ms = int(lease * 1000)
        # redis-py's return types are unions of every reply shape: treat the client as Any here,
        # at the edge, and check the shapes we rely on in the tests (both backbones run them).
        # A blocking pool: past max_connections a command waits for a free connection (up to
        # pool_timeout) instead of failing with "Too many connections" under a burst of
        # subscribers; the pool size bounds what one process asks of Redis.
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=pool_timeout,
            socket_timeout=5,
            socket_connect_timeout=2,
            health_check_interval=10,
            **pool_options(),
        )
        self._client: Any = aioredis.Redis.from_pool(pool)  # owns the pool: aclose() closes it
        self._blocking: Any = aioredis.Redis.from_url(
            url, socket_connect_timeout=2, **pool_options()
        )
        self._cancel_listeners: list[CancelListener] = []
        self._fanout = Fanout(self._client, self._on_control, self._newest_event)
        self._secret: bytes | None = None
        self._last_reclaim = 0.0
        # Every script call and ack of this process shares round trips with the others.
        self._batcher = CommandBatcher(self._client)
        self._deliveries = RedisDeliveries(self._client, self._batcher.script, self._retention)
        self.windows = RedisWindows(self._batcher.script)  # the rate limiter's counters
        self._delivery_listeners: list[DeliveryListener] = []
        self._remote = RemoteWork(self._client, self._blocking, self._lease_ms)
        self._sweep_interval = sweep_interval
        self._sweeper: asyncio.Task[None] | None = None
        self._sessions = RedisSessions(
            self._client,
            self._batcher.script,
            max_events=max_events,
            retention=self._retention,
        )

    # -- life ----------------------------------------------------------------------------
    async def start(self) -> None:
        with contextlib.suppress(BackboneUnavailable):
            await self._ensure_group()
        await self._fanout.start()
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="skillwire-redis-sweeper")

    async def _ensure_group(self) -> None:
        async with _translated():
            try:
                await self._client.xgroup_create(keys.WORK, keys.WORK_GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def _recreate_group(self, noticed_by: str) -> None:
        """The work stream's consumer group is gone: Redis restarted without persistence or
        was flushed. Recreated from the stream's start, so work queued since is delivered."""
        log.warning(
            "redis lost its data (the work queue's consumer group is gone, noticed by %s): "
            "recreating it; tasks stored before the loss are gone",
            noticed_by,
        )
        await self._ensure_group()
        if self._secret is not None:
            # The id secret went too: put back the one this process (and every process that
            # ran before the loss) signs with, so they keep agreeing on old and new ids.
            async with _translated():
                await self._client.set(keys.SECRET, self._secret.hex(), nx=True)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        await self._fanout.close()
        await self._batcher.close()
        await self._client.aclose()
        await self._blocking.aclose()

    async def check(self) -> None:
        """Redis answers, the work group exists (recreated here if Redis lost it), and live
        events flow: right after Redis returns, the pub/sub connection may still be waiting
        out its backoff, and a subscribe would fail meanwhile."""
        async with _translated():
            if await self._work_group() is None:
                await self._recreate_group("the readiness check")
        if not self._fanout.connected:
            raise BackboneUnavailable("redis pub/sub is reconnecting")

    async def _work_group(self) -> dict[Any, Any] | None:
        """The work stream's consumer group as XINFO GROUPS tells it, or None when missing."""
        try:
            groups = await self._client.xinfo_groups(keys.WORK)
        except ResponseError as exc:
            if "no such key" not in str(exc):
                raise
            return None
        return next((g for g in groups if g["name"] == keys.WORK_GROUP.encode()), None)

    async def id_secret(self) -> bytes:
        if self._secret is None:
            async with _translated():
                await self._client.set(keys.SECRET, secrets.token_hex(32), nx=True)
                value = await self._client.get(keys.SECRET)
            self._secret = bytes.fromhex(value.decode())
        return self._secret

    # -- tasks ---------------------------------------------------------------------------
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
            async with _translated():
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
        async with _translated(), self._client.pipeline(transaction=True) as pipe:
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
        async with _translated():
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
        async with _translated():
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

    async def _sweep_forever(self) -> None:
        """Prune the task indexes every sweep interval (one process of the deployment does)."""
        while True:
            await asyncio.sleep(self._sweep_interval)
            try:
                async with _translated():
                    await sweep(self._client, self._retention, self._sweep_interval)
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

    async def append(
        self, task_id: str, type_: EventType, index: int, data: Any
    ) -> list[EncodedEvent]:
        _, events = await self.append_batch(task_id, index, [(type_, data)])
        return events

    batches_appends = True

    async def append_batch(
        self, task_id: str, index: int, entries: list[tuple[EventType, Any]]
    ) -> tuple[int, list[EncodedEvent]]:
        groups: list[Any] = []
        for type_, data in entries:
            groups += (type_.value, index, *group_args(type_, data))
        now = time.time()
        async with _translated():
            flat = await self._batcher.script(
                scripts.APPEND,
                [keys.task(task_id), keys.events(task_id), keys.live(task_id), *creation_keys()],
                [
                    task_id,
                    keys.output_prefix(task_id),
                    format_time(now),
                    self._max_events,
                    self._retention,
                    self._retention,
                    len(entries),
                    self._max_outputs,
                    self._max_output_bytes,
                    *groups,
                    *creation_args(task_id, now, self.webhook_urls),
                ],
            )
        events = _events(flat[1:])
        if events and events[-1].terminal:
            self._wake_dispatchers()
        return int(flat[0]), events

    async def cancel(self, task_id: str) -> Task:
        now = time.time()
        async with _translated():
            result = await self._batcher.script(
                scripts.CANCEL,
                [
                    keys.task(task_id),
                    keys.events(task_id),
                    keys.live(task_id),
                    keys.CONTROL,
                    *creation_keys(),
                ],
                [
                    task_id,
                    keys.output_prefix(task_id),
                    format_time(now),
                    self._max_events,
                    self._retention,
                    *creation_args(task_id, now, self.webhook_urls),
                ],
            )
        outcome = result[0]
        if outcome == b"missing":
            raise NotFound(f"task {task_id} not found")
        if outcome == b"conflict":
            status = result[1].decode()
            raise Conflict(f"task {task_id} is already {status}", details={"status": status})
        self._wake_dispatchers()
        return validate(decode_event(result[3]).data, Task)

    # -- log and fan-out -----------------------------------------------------------------
    async def read_events(self, task_id: str, after: int, limit: int) -> LogSlice | None:
        async with _translated():
            found = await self._batcher.script(
                scripts.READ,
                [keys.task(task_id), keys.events(task_id)],
                [after, limit],
                repeatable=True,
            )
        if found is None:
            return None
        status, last_seq, first_seq, entries = found
        return LogSlice(
            events=[_entry(entry_id, fields) for entry_id, fields in entries],
            first_seq=int(first_seq),
            last_seq=int(last_seq),
            finished=status.decode() in lifecycle.TERMINAL_TASK_STATUSES,
        )

    async def listen(self, task_id: str, listener: EventListener) -> Callable[[], None]:
        return await self._fanout.listen(task_id, listener)

    async def _newest_event(self, task_id: str) -> EncodedEvent | None:
        if task_id.startswith(SESSION_ID_PREFIX):  # the fan-out follows sessions too
            return await self._sessions.newest(task_id)
        entries = await self._client.xrevrange(keys.events(task_id), count=1)
        return _entry(*entries[0]) if entries else None

    def listener_count(self) -> int:
        return self._fanout.listener_count()

    # -- sessions ------------------------------------------------------------------------
    async def create_session(self, session: Session, *, owner: str) -> None:
        async with _translated():
            await self._sessions.create(session, owner)

    async def get_session(self, session_id: str) -> StoredSession | None:
        async with _translated():
            return await self._sessions.get(session_id)

    async def list_sessions(
        self, *, owner: str | None, limit: int, offset: int
    ) -> tuple[list[Session], int]:
        async with _translated():
            return await self._sessions.page(owner, limit, offset)

    async def close_session(self, session_id: str) -> Session:
        async with _translated():
            task_ids = await self._sessions.mark_closed(session_id)
        for task_id in task_ids:
            with contextlib.suppress(Conflict, NotFound):  # finished, or past retention
                await self.cancel(task_id)
        async with _translated():
            return await self._sessions.append_closed(session_id, format_time(time.time()))

    async def read_session_events(self, session_id: str, after: int, limit: int) -> LogSlice | None:
        async with _translated():
            return await self._sessions.read(session_id, after, limit)

    async def listen_session(self, session_id: str, listener: EventListener) -> Callable[[], None]:
        # The fan-out keys listeners by the id in a channel's hash tag: a session's is its own.
        return await self._fanout.listen(session_id, listener)

    async def session_snapshot(self, session_id: str, tasks: int) -> SessionSnapshot | None:
        async with _translated():
            return await self._sessions.snapshot(session_id, tasks)

    # -- work ----------------------------------------------------------------------------
    async def claim(self, consumer: str, count: int, timeout: float) -> list[Claim]:
        async with _translated():
            try:
                return await self._claim(consumer, count, timeout)
            except ResponseError as exc:
                # Both the reclaim and the read: a worker whose backoff grew past half the
                # lease (Redis was down a while) reclaims on every call and never reads, so a
                # reclaim that does not recover leaves it failing forever.
                if not _group_gone(exc):
                    raise
                await self._recreate_group(f"the worker {consumer}")
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
        async with _translated():
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
                await self._recreate_group(f"the worker {consumer}")

    async def ack(self, claim: Claim) -> None:
        # Two commands in the shared batch rather than a MULTI on a connection of its own: a
        # thousand tasks finishing together must not queue for the pool. Acked is what counts;
        # an entry whose XDEL was lost with the connection is history, never delivered again.
        async with _translated():
            await asyncio.gather(
                self._batcher.command(
                    "XACK", keys.WORK, keys.WORK_GROUP, claim.token, repeatable=True
                ),
                self._batcher.command("XDEL", keys.WORK, claim.token, repeatable=True),
            )

    async def requeue(self, claim: Claim) -> None:
        async with _translated():
            pipe = self._client.pipeline(transaction=True)
            pipe.xadd(keys.WORK, {"w": encode(claim.item)})
            pipe.xack(keys.WORK, keys.WORK_GROUP, claim.token)
            pipe.xdel(keys.WORK, claim.token)
            await pipe.execute()

    async def queue_stats(self) -> tuple[int, float]:
        """Work items waiting (not yet claimed), and the age in seconds of the oldest one."""
        async with _translated():
            group = await self._work_group()
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

    # -- control -------------------------------------------------------------------------
    def add_cancel_listener(self, listener: CancelListener) -> None:
        self._cancel_listeners.append(listener)

    def _on_control(self, data: bytes) -> None:
        verb, _, task_id = data.decode().partition(" ")
        if verb == "cancel":
            for listener in list(self._cancel_listeners):
                listener(task_id)

    # -- small shared state --------------------------------------------------------------
    async def put_ticket(self, ticket: str, principal: str, ttl: float) -> None:
        async with _translated():
            await self._client.set(keys.ticket(ticket), principal, px=max(int(ttl * 1000), 1))

    async def take_ticket(self, ticket: str) -> str | None:
        async with _translated():
            value = await self._client.getdel(keys.ticket(ticket))
        return value.decode() if value is not None else None

    # -- remote work ---------------------------------------------------------------------
    shares_remote_work = True

    async def offer_remote(self, key: str, item: WorkItem) -> None:
        async with _translated():
            await self._remote.offer(key, item)

    async def claim_remote(
        self, consumer: str, wants: dict[str, int], timeout: float
    ) -> list[Claim]:
        async with _translated():
            return await self._remote.claim(consumer, wants, timeout)

    async def touch_remote(self, consumer: str, claims: list[Claim]) -> None:
        if claims:
            async with _translated():
                await self._remote.touch(consumer, claims)

    async def ack_remote(self, claim: Claim) -> None:
        async with _translated():
            await self._remote.ack(claim)

    async def requeue_remote(self, claim: Claim) -> None:
        async with _translated():
            await self._remote.requeue(claim)

    async def mark_serving(self, process: str, served: list[str], ttl: float) -> None:
        if served:
            async with _translated():
                await self._remote.mark_serving(process, served, ttl)

    async def unmark_serving(self, process: str, key: str) -> None:
        async with _translated():
            await self._remote.unmark_serving(process, key)

    async def served_anywhere(self, key: str) -> bool:
        async with _translated():
            return await self._remote.served_anywhere(key)

    async def count_remote_attempt(
        self, task_id: str, index: int, ttl: float, attempts: int = 1
    ) -> int | None:
        async with _translated():
            return await self._remote.count_attempt(task_id, index, ttl, attempts)

    async def set_remote_deadline(self, task_id: str, index: int, at: float) -> None:
        async with _translated():
            await self._remote.set_deadline(task_id, index, at)

    async def take_remote_deadline(self, task_id: str, index: int) -> float | None:
        async with _translated():
            return await self._remote.take_deadline(task_id, index)

    async def take_due_remote_deadlines(self, now: float) -> list[tuple[str, int]]:
        async with _translated():
            return await self._remote.take_due_deadlines(now)

    async def put_worker(self, info: WorkerInfo, ttl: float) -> None:
        async with _translated():
            await self._remote.put_worker(info, ttl)

    async def drop_worker(self, worker_id: str) -> None:
        async with _translated():
            await self._remote.drop_worker(worker_id)

    async def list_workers(self) -> list[WorkerInfo]:
        async with _translated():
            return await self._remote.list_workers()

    # -- remote workers' skill declarations ------------------------------------------------
    async def declare_skill(self, declaration: SkillDeclaration, ttl: float) -> SkillDeclaration:
        ms = max(int(ttl * 1000), 1)
        key = keys.declaration(declaration.key)
        async with _translated():
            while True:
                if await self._client.set(key, msgspec.json.encode(declaration), nx=True, px=ms):
                    kept = declaration
                    break
                raw = await self._client.get(key)
                if raw is None:  # it lapsed between the two commands: declare again
                    continue
                kept = msgspec.json.decode(raw, type=SkillDeclaration)
                if not kept.same_contract(declaration):
                    return kept
                await self._client.pexpire(key, ms)
                break
            until = int(time.time() * 1000) + ms
            await self._client.zadd(keys.DECLARATIONS, {declaration.key: until}, gt=True)
        return kept

    async def declared_skills(self) -> list[SkillDeclaration]:
        now = int(time.time() * 1000)
        async with _translated():
            await self._client.zremrangebyscore(keys.DECLARATIONS, "-inf", now)
            names = await self._client.zrange(keys.DECLARATIONS, 0, -1)
            if not names:
                return []
            raws = await self._client.mget([keys.declaration(n.decode()) for n in names])
        found = [msgspec.json.decode(raw, type=SkillDeclaration) for raw in raws if raw]
        return sorted(found, key=lambda d: d.key)

    async def declared_skill(self, app: str, skill: str) -> SkillDeclaration | None:
        async with _translated():
            raw = await self._client.get(keys.declaration(f"{app}/{skill}"))
        return msgspec.json.decode(raw, type=SkillDeclaration) if raw else None

    # -- webhook deliveries ----------------------------------------------------------------
    async def claim_deliveries(
        self, count: int, lease: float
    ) -> tuple[list[DeliveryRecord], float | None]:
        async with _translated():
            return await self._deliveries.claim(count, lease)

    async def finish_attempt(
        self,
        delivery_id: str,
        attempt: int,
        *,
        delivered: bool,
        error: str | None,
        retry_at: float | None,
    ) -> bool:
        async with _translated():
            return await self._deliveries.finish(
                delivery_id, attempt, delivered=delivered, error=error, retry_at=retry_at
            )

    async def retry_delivery(self, delivery_id: str) -> DeliveryRecord:
        async with _translated():
            record = await self._deliveries.retry(delivery_id)
        self._wake_dispatchers()
        return record

    async def get_delivery(self, delivery_id: str) -> DeliveryRecord | None:
        async with _translated():
            return await self._deliveries.get(delivery_id)

    async def list_deliveries(
        self, *, status: DeliveryStatus | None, limit: int, offset: int
    ) -> tuple[list[DeliveryRecord], int]:
        async with _translated():
            return await self._deliveries.list(status, limit, offset)

    def add_delivery_listener(self, listener: DeliveryListener) -> None:
        self._delivery_listeners.append(listener)

    def _wake_dispatchers(self) -> None:
        """This process finished a task: its dispatcher may claim the deliveries at once."""
        for listener in list(self._delivery_listeners):
            listener()


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


def _group_gone(exc: ResponseError) -> bool:
    """The work group (or its stream) is missing: NOGROUP, or UNBLOCKED when the stream was
    deleted under a worker blocked reading it."""
    return str(exc).startswith(("NOGROUP", "UNBLOCKED"))


def _events(flat: list[Any]) -> list[EncodedEvent]:
    """Events as a script returns them: seq, type, JSON, seq, type, JSON, ..."""
    out = []
    for i in range(0, len(flat), 3):
        out.append(EncodedEvent(int(flat[i]), flat[i + 1].decode(), flat[i + 2]))
    return out


def _entry(entry_id: bytes, fields: dict[bytes, bytes] | list[bytes]) -> EncodedEvent:
    if isinstance(fields, list):  # as a Lua script returns it: [name, value, ...]
        fields = dict(zip(fields[::2], fields[1::2], strict=True))
    return EncodedEvent(int(entry_id.split(b"-", 1)[0]), fields[b"t"].decode(), fields[b"e"])


def _claim(entry_id: bytes, fields: dict[bytes, bytes], deliveries: int) -> Claim:
    return Claim(
        item=_work_decoder.decode(fields[b"w"]), token=entry_id.decode(), deliveries=deliveries
    )
