"""The Redis backbone: many server and worker processes sharing one Redis.

Each task mutation is one Lua script (one round trip); the log is a Redis Stream capped
at ``max_events``; live events go out on the task's pub/sub channel, and each process holds
one pub/sub connection for all its listeners (``Fanout``). Work is a stream read by one
consumer group: at least once, with a lease that a running worker keeps renewing and that
other workers take over when it lapses. Redis errors become ``BackboneUnavailable`` in
``_errors.translated`` and nowhere else.

``RedisBackbone`` is the façade: it owns the connections and the process's command batcher,
and implements ``Backbone`` by delegating to one class per concern: ``RedisTasks`` (records
and indexes), ``RedisEvents`` (the log), ``RedisWork`` (the work queue), ``RedisTokens`` (id
secret, tickets), ``RedisDeclarations``, ``RemoteWork``, ``RedisSessions``,
``RedisDeliveries`` and ``RedisWindows``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

from skillwire.protocol import (
    DEFAULT_MAX_OUTPUT_BYTES,
    DEFAULT_MAX_OUTPUTS,
    BackboneUnavailable,
    Conflict,
    DeliveryStatus,
    EncodedEvent,
    Event,
    EventType,
    NotFound,
    Session,
    SessionSnapshot,
    SkillDeclaration,
    Task,
    TaskStatus,
    WorkerInfo,
    format_time,
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
from ._batching import CommandBatcher
from ._connections import pool_options
from ._declarations import RedisDeclarations
from ._deliveries import RedisDeliveries
from ._errors import translated
from ._events import RedisEvents
from ._fanout import Fanout
from ._remote_work import RemoteWork
from ._sessions import RedisSessions
from ._tasks import RedisTasks
from ._tokens import RedisTokens
from ._windows import RedisWindows
from ._work import RedisWork

__all__ = ["RedisBackbone"]


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
        pubsub_idle: float = 5.0,
    ) -> None:
        self._url = url
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
        # Every script call and ack of this process shares round trips with the others.
        self._batcher = CommandBatcher(self._client)
        self._sessions = RedisSessions(
            self._client,
            self._batcher.script,
            max_events=max_events,
            retention=self._retention,
        )
        self._tasks = RedisTasks(
            self._client, self._batcher, self._sessions, retention=self._retention
        )
        self._events = RedisEvents(
            self._client,
            self._batcher,
            self._sessions,
            max_events=max_events,
            max_outputs=max_outputs,
            max_output_bytes=max_output_bytes,
            retention=self._retention,
            webhook_urls=lambda: self.webhook_urls,
            wake_dispatchers=self._wake_dispatchers,
        )
        self._fanout = Fanout(self._client, self._on_control, self._events.newest, idle=pubsub_idle)
        self._tokens = RedisTokens(self._client)
        self._work = RedisWork(
            self._client, self._blocking, self._batcher, self._lease_ms, self._tokens.restore_secret
        )
        self._deliveries = RedisDeliveries(self._client, self._batcher.script, self._retention)
        self.windows = RedisWindows(self._batcher.script)  # the rate limiter's counters
        self._delivery_listeners: list[DeliveryListener] = []
        self._remote = RemoteWork(self._client, self._blocking, self._lease_ms)
        self._declarations = RedisDeclarations(self._client)
        self._sweep_interval = sweep_interval
        self._sweeper: asyncio.Task[None] | None = None

    # -- life ----------------------------------------------------------------------------
    async def start(self) -> None:
        with contextlib.suppress(BackboneUnavailable):
            await self._work.ensure_group()
        await self._fanout.start()
        self._sweeper = asyncio.create_task(
            self._tasks.sweep_forever(self._sweep_interval), name="skillwire-redis-sweeper"
        )

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
        async with translated():
            if await self._work.work_group() is None:
                await self._work.recreate_group("the readiness check")
        if not self._fanout.connected:
            raise BackboneUnavailable("redis pub/sub is reconnecting")

    async def id_secret(self) -> bytes:
        return await self._tokens.id_secret()

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
        return await self._tasks.create_task(
            task,
            first_event,
            owner=owner,
            webhook_url=webhook_url,
            work=work,
            idempotency=idempotency,
        )

    async def get_task(self, task_id: str) -> StoredTask | None:
        return await self._tasks.get_task(task_id)

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
        return await self._tasks.list_tasks(
            owner=owner, status=status, app=app, skill=skill, limit=limit, offset=offset
        )

    async def append(
        self, task_id: str, type_: EventType, index: int, data: Any
    ) -> list[EncodedEvent]:
        _, events = await self.append_batch(task_id, index, [(type_, data)])
        return events

    batches_appends = True

    async def append_batch(
        self, task_id: str, index: int, entries: list[tuple[EventType, Any]]
    ) -> tuple[int, list[EncodedEvent]]:
        return await self._events.append_batch(task_id, index, entries)

    def append_batch_soon(
        self, task_id: str, index: int, entries: list[tuple[EventType, Any]]
    ) -> asyncio.Future[int] | None:
        return self._events.append_batch_soon(task_id, index, entries)

    async def cancel(self, task_id: str) -> Task:
        return await self._events.cancel(task_id)

    # -- log and fan-out -----------------------------------------------------------------
    async def read_events(self, task_id: str, after: int, limit: int) -> LogSlice | None:
        return await self._events.read_events(task_id, after, limit)

    async def listen(self, task_id: str, listener: EventListener) -> Callable[[], None]:
        return await self._fanout.listen(task_id, listener)

    def listener_count(self) -> int:
        return self._fanout.listener_count()

    # -- sessions ------------------------------------------------------------------------
    async def create_session(self, session: Session, *, owner: str) -> None:
        async with translated():
            await self._sessions.create(session, owner)

    async def get_session(self, session_id: str) -> StoredSession | None:
        async with translated():
            return await self._sessions.get(session_id)

    async def list_sessions(
        self, *, owner: str | None, limit: int, offset: int
    ) -> tuple[list[Session], int]:
        async with translated():
            return await self._sessions.page(owner, limit, offset)

    async def close_session(self, session_id: str) -> Session:
        async with translated():
            task_ids = await self._sessions.mark_closed(session_id)
        for task_id in task_ids:
            with contextlib.suppress(Conflict, NotFound):  # finished, or past retention
                await self.cancel(task_id)
        async with translated():
            return await self._sessions.append_closed(session_id, format_time(time.time()))

    async def read_session_events(self, session_id: str, after: int, limit: int) -> LogSlice | None:
        async with translated():
            return await self._sessions.read(session_id, after, limit)

    async def listen_session(self, session_id: str, listener: EventListener) -> Callable[[], None]:
        # The fan-out keys listeners by the id in a channel's hash tag: a session's is its own.
        return await self._fanout.listen(session_id, listener)

    async def session_snapshot(self, session_id: str, tasks: int) -> SessionSnapshot | None:
        async with translated():
            return await self._sessions.snapshot(session_id, tasks)

    # -- work ----------------------------------------------------------------------------
    async def claim(self, consumer: str, count: int, timeout: float) -> list[Claim]:
        return await self._work.claim(consumer, count, timeout)

    async def touch(self, consumer: str, claims: list[Claim]) -> None:
        await self._work.touch(consumer, claims)

    async def ack(self, claim: Claim) -> None:
        await self._work.ack(claim)

    async def requeue(self, claim: Claim) -> None:
        await self._work.requeue(claim)

    async def queue_stats(self) -> tuple[int, float]:
        """Work items waiting (not yet claimed), and the age in seconds of the oldest one."""
        return await self._work.queue_stats()

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
        await self._tokens.put_ticket(ticket, principal, ttl)

    async def take_ticket(self, ticket: str) -> str | None:
        return await self._tokens.take_ticket(ticket)

    # -- remote work ---------------------------------------------------------------------
    shares_remote_work = True

    async def offer_remote(self, key: str, item: WorkItem) -> None:
        async with translated():
            await self._remote.offer(key, item)

    async def claim_remote(
        self, consumer: str, wants: dict[str, int], timeout: float
    ) -> list[Claim]:
        async with translated():
            return await self._remote.claim(consumer, wants, timeout)

    async def touch_remote(self, consumer: str, claims: list[Claim]) -> None:
        if claims:
            async with translated():
                await self._remote.touch(consumer, claims)

    async def ack_remote(self, claim: Claim) -> None:
        async with translated():
            await self._remote.ack(claim)

    async def requeue_remote(self, claim: Claim) -> None:
        async with translated():
            await self._remote.requeue(claim)

    async def mark_serving(self, process: str, served: list[str], ttl: float) -> None:
        if served:
            async with translated():
                await self._remote.mark_serving(process, served, ttl)

    async def unmark_serving(self, process: str, key: str) -> None:
        async with translated():
            await self._remote.unmark_serving(process, key)

    async def served_anywhere(self, key: str) -> bool:
        async with translated():
            return await self._remote.served_anywhere(key)

    async def count_remote_attempt(
        self, task_id: str, index: int, ttl: float, attempts: int = 1
    ) -> int | None:
        async with translated():
            return await self._remote.count_attempt(task_id, index, ttl, attempts)

    async def set_remote_deadline(self, task_id: str, index: int, at: float) -> None:
        async with translated():
            await self._remote.set_deadline(task_id, index, at)

    async def take_remote_deadline(self, task_id: str, index: int) -> float | None:
        async with translated():
            return await self._remote.take_deadline(task_id, index)

    async def take_due_remote_deadlines(self, now: float) -> list[tuple[str, int]]:
        async with translated():
            return await self._remote.take_due_deadlines(now)

    async def put_worker(self, info: WorkerInfo, ttl: float) -> None:
        async with translated():
            await self._remote.put_worker(info, ttl)

    async def drop_worker(self, worker_id: str) -> None:
        async with translated():
            await self._remote.drop_worker(worker_id)

    async def list_workers(self) -> list[WorkerInfo]:
        async with translated():
            return await self._remote.list_workers()

    # -- remote workers' skill declarations ------------------------------------------------
    async def declare_skill(self, declaration: SkillDeclaration, ttl: float) -> SkillDeclaration:
        return await self._declarations.declare(declaration, ttl)

    async def declared_skills(self) -> list[SkillDeclaration]:
        return await self._declarations.all()

    async def declared_skill(self, app: str, skill: str) -> SkillDeclaration | None:
        return await self._declarations.get(app, skill)

    # -- webhook deliveries ----------------------------------------------------------------
    async def claim_deliveries(
        self, count: int, lease: float
    ) -> tuple[list[DeliveryRecord], float | None]:
        async with translated():
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
        async with translated():
            return await self._deliveries.finish(
                delivery_id, attempt, delivered=delivered, error=error, retry_at=retry_at
            )

    async def retry_delivery(self, delivery_id: str) -> DeliveryRecord:
        async with translated():
            record = await self._deliveries.retry(delivery_id)
        self._wake_dispatchers()
        return record

    async def get_delivery(self, delivery_id: str) -> DeliveryRecord | None:
        async with translated():
            return await self._deliveries.get(delivery_id)

    async def list_deliveries(
        self, *, status: DeliveryStatus | None, limit: int, offset: int
    ) -> tuple[list[DeliveryRecord], int]:
        async with translated():
            return await self._deliveries.list(status, limit, offset)

    def add_delivery_listener(self, listener: DeliveryListener) -> None:
        self._delivery_listeners.append(listener)

    def _wake_dispatchers(self) -> None:
        """This process finished a task: its dispatcher may claim the deliveries at once."""
        for listener in list(self._delivery_listeners):
            listener()
