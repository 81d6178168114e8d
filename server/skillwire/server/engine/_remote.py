"""Skills served by remote workers: declarations, the workers connected to this process, and
dispatch of work to them.

A remote skill is a ``SkillSpec`` like any other. Its function (``RemoteSkills.run``) waits for
a connected worker with a free slot, sends it the work, and relays what the worker answers
through the same ``Context`` an in-process skill uses: the lifecycle table, cancel, timeouts,
write-behind and the worker pool's lease apply unchanged. A worker that disconnects (or falls
silent) loses its unfinished work, which is sent again to another worker (``attempt`` + 1),
after a fresh ``request.started``, up to ``max_attempts``.

What a worker sends for one work item goes through a small bounded inbox
(``_remote_worker.Inbox``): when the skill side cannot keep up, the connection's reader waits
for room, so the gateway stops reading that socket and nothing is dropped. On a shared
backbone, a sub-request with no free worker here goes to its skill's queue for whichever
process has one (``_remote_pool``).

Declarations live in the backbone (every gateway sees them) until an hour after the last
worker serving them left; the first one fixes a skill's schema and mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from skillwire.protocol import (
    CancelWork,
    Conflict,
    ErrorCode,
    EventType,
    NotFound,
    RequestStatus,
    Skill,
    SkillDeclaration,
    SkillError,
    SkillwireError,
    Work,
    WorkCompleted,
    WorkDelta,
    WorkerInfo,
    WorkerMessage,
    WorkFailed,
    WorkOutput,
    WorkProgress,
    encode_worker_message,
)

from ..backbone import WorkItem
from ._app import SkillSpec
from ._context import Context, Discarded
from ._registry import Registry
from ._remote_worker import RemoteWork, RemoteWorker, WorkerLost
from ._schemas import check_schema, declared_skill

if TYPE_CHECKING:
    from ..backbone import Backbone, Claim

__all__ = ["HandedOff", "RemoteQueue", "RemoteSkills"]

DECLARATION_TTL = 3600.0  # a declaration outlives the last worker serving it by an hour
REFRESH_EVERY = 10.0  # how often what connected workers serve is renewed in the backbone
SERVING_TTL = 3 * REFRESH_EVERY  # a process that stopped renewing no longer counts as serving
CACHE_FOR = 2.0  # seconds a declaration read from the backbone is trusted
SWEEP_EVERY = 1.0  # how often the no_worker deadlines past in the backbone are enforced

log = logging.getLogger("skillwire.workers")


class HandedOff(Discarded):
    """The sub-request went to another process's queue: this run ends without an ending."""


class RemoteQueue:
    """The claims of remote skills' queues, as a ``WorkQueue`` for the pool that runs them."""

    def __init__(self, backbone: Backbone) -> None:
        self._backbone = backbone

    async def claim(self, consumer: str, count: int, timeout: float) -> list[Claim]:
        return []  # the RemotePool claims, per skill

    async def touch(self, consumer: str, claims: list[Claim]) -> None:
        await self._backbone.touch_remote(consumer, claims)

    async def ack(self, claim: Claim) -> None:
        await self._backbone.ack_remote(claim)

    async def requeue(self, claim: Claim) -> None:
        await self._backbone.requeue_remote(claim)


class _LocalOnly:
    def __init__(self, remote: RemoteSkills) -> None:
        self._remote = remote

    async def find(self, app: str, skill: str) -> SkillSpec | None:
        return await self._remote.find(app, skill, local_only=True)


class RemoteSkills:
    def __init__(
        self,
        backbone: Backbone,
        registry: Registry,
        *,
        max_attempts: int = 5,
        declaration_ttl: float = DECLARATION_TTL,
        default_timeout: float = 300.0,
        timeouts: dict[str, float] | None = None,
    ) -> None:
        self._backbone = backbone
        self._default_timeout = default_timeout
        self._timeouts = timeouts or {}
        # Who this process is when it tells the backbone which skills it serves.
        self.process = f"{os.uname().nodename}:{os.getpid()}:{id(self):x}"
        # Called with an app/skill when a slot for it frees here (the RemotePool claims more).
        self.on_capacity: Callable[[str], None] | None = None
        self._timers: set[asyncio.TimerHandle] = set()
        self._registry = registry
        self._max_attempts = max_attempts
        self._ttl = declaration_ttl
        self.workers: dict[str, RemoteWorker] = {}
        self._serving: dict[str, list[RemoteWorker]] = defaultdict(list)
        self._waiting: dict[str, deque[asyncio.Future[None]]] = defaultdict(deque)
        self._specs: dict[str, tuple[SkillDeclaration, SkillSpec, SkillSpec, float]] = {}
        self._refresher: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._stopped = False  # nothing more goes to the backbone from a detach or a timer

    # -- life ------------------------------------------------------------------------------
    async def start(self) -> None:
        self._refresher = asyncio.create_task(self._refresh(), name="skillwire-declarations")
        if self._backbone.shares_remote_work:
            self._sweeper = asyncio.create_task(self._sweep(), name="skillwire-no-worker")

    async def stop(self) -> None:
        self._stopped = True
        for timer in self._timers:
            timer.cancel()
        pending = list(self._background)
        for job in pending:
            job.cancel()
        for job in pending:
            with contextlib.suppress(asyncio.CancelledError, SkillwireError):
                await job
        for loop in (self._refresher, self._sweeper):
            if loop is not None:
                loop.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loop
        self._refresher = self._sweeper = None

    async def _refresh(self) -> None:
        """Renew the declarations of the skills connected workers serve."""
        while True:
            await asyncio.sleep(REFRESH_EVERY)
            served = [key for key, workers in self._serving.items() if workers]
            await self._renew(served)
            with contextlib.suppress(SkillwireError):
                await self._backbone.mark_serving(self.process, served, SERVING_TTL)
                for worker in list(self.workers.values()):
                    await self._backbone.put_worker(worker.info(), SERVING_TTL)

    async def _sweep(self) -> None:
        """Fail the sub-requests still queued past their no_worker deadline, whichever process
        queued them (it may have died with its timer)."""
        while True:
            await asyncio.sleep(SWEEP_EVERY)
            try:
                due = await self._backbone.take_due_remote_deadlines(time.time())
            except SkillwireError as exc:
                log.warning("cannot read the no_worker deadlines: %s", exc.message)
                continue
            for task_id, index in due:
                await self._fail_if_queued(task_id, index)

    async def _renew(self, keys: list[str]) -> None:
        for key in keys:
            cached = self._specs.get(key)
            if cached is None:
                continue
            try:
                await self._backbone.declare_skill(cached[0], self._ttl)
            except SkillwireError as exc:
                log.warning("cannot renew the declaration of %s: %s", key, exc.message)

    # -- skills ----------------------------------------------------------------------------
    def _spec(self, declaration: SkillDeclaration, *, local_only: bool = False) -> SkillSpec:
        """The skill as the engine sees it. ``local_only``: the variant that runs work on this
        process's workers only (work claimed from a remote skill's queue)."""
        cached = self._specs.get(declaration.key)
        if cached is not None and cached[0] == declaration:
            specs = cached[1], cached[2]
        else:
            specs = (
                self._build(declaration, self.run),
                self._build(declaration, functools.partial(self.run, local_only=True)),
            )
        self._specs[declaration.key] = (declaration, *specs, time.monotonic())
        return specs[1] if local_only else specs[0]

    @staticmethod
    def _build(declaration: SkillDeclaration, fn: Callable[..., Any]) -> SkillSpec:
        return declared_skill(declaration, fn, starts_itself=True)

    async def find(self, app: str, skill: str, *, local_only: bool = False) -> SkillSpec | None:
        """The remote skill ``app/skill`` if some worker declared it (here or elsewhere)."""
        key = f"{app}/{skill}"
        cached = self._specs.get(key)
        fresh = cached is not None and time.monotonic() - cached[3] < CACHE_FOR
        if cached is not None and (fresh or self._serving.get(key)):
            return cached[2] if local_only else cached[1]
        declaration = await self._backbone.declared_skill(app, skill)
        if declaration is None:
            self._specs.pop(key, None)
            return None
        return self._spec(declaration, local_only=local_only)

    def local_only(self) -> _LocalOnly:
        """This, as the pool running work claimed from remote skills' queues looks it up."""
        return _LocalOnly(self)

    async def describe(self, default_max_requests: int) -> list[Skill]:
        return [
            self._spec(d).describe(default_max_requests)
            for d in await self._backbone.declared_skills()
        ]

    # -- workers ---------------------------------------------------------------------------
    def attach(self, worker: RemoteWorker) -> None:
        self.workers[worker.worker_id] = worker

    async def declare(
        self, worker: RemoteWorker, declarations: list[SkillDeclaration]
    ) -> list[tuple[SkillDeclaration, SkillwireError | None]]:
        """Register what a worker's hello declares: each skill gets None or the error that
        refused it (CONFLICT with an in-process skill or an earlier declaration)."""
        outcomes: list[tuple[SkillDeclaration, SkillwireError | None]] = []
        for declaration in declarations:
            try:
                await self._declare_one(worker, declaration)
            except SkillwireError as exc:
                outcomes.append((declaration, exc))
            else:
                outcomes.append((declaration, None))
        return outcomes

    async def _declare_one(self, worker: RemoteWorker, declaration: SkillDeclaration) -> None:
        key = declaration.key
        with contextlib.suppress(NotFound):
            self._registry.get(declaration.app, declaration.skill)
            raise Conflict(
                f"{key} is an in-process skill of this server; a worker cannot serve it",
                details={"skill": key},
            )
        check_schema(declaration)
        kept = await self._backbone.declare_skill(declaration, self._ttl)
        if not kept.same_contract(declaration):
            raise Conflict(
                f"{key} is already declared with another input_schema or mode",
                details={"skill": key, "input_schema": kept.input_schema, "mode": kept.mode},
            )
        if worker.worker_id not in self.workers or key in worker.skills:
            return
        self._spec(kept)
        worker.skills.append(key)
        self._serving[key].append(worker)
        await self._backbone.mark_serving(self.process, [key], SERVING_TTL)
        self._wake(key)

    async def announce(self, worker: RemoteWorker) -> None:
        """Record the worker for ``GET /api/v1/workers`` on every gateway."""
        with contextlib.suppress(SkillwireError):
            await self._backbone.put_worker(worker.info(), SERVING_TTL)

    async def listing(self) -> list[WorkerInfo]:
        """Every connected worker: those recorded by any process, this one's as they are now."""
        here = {w.worker_id: w.info() for w in self.workers.values()}
        found = {w.worker_id: w for w in await self._backbone.list_workers()}
        found.update(here)
        return sorted(found.values(), key=lambda w: w.connected_at)

    def detach(self, worker: RemoteWorker) -> None:
        """The worker is gone: its unfinished work runs again elsewhere."""
        if self.workers.pop(worker.worker_id, None) is None:
            return
        for key in worker.skills:
            serving = self._serving.get(key, [])
            if worker in serving:
                serving.remove(worker)
            if not serving:
                self._serving.pop(key, None)
        for work in list(worker.work.values()):
            work.inbox.lose()
        if self._stopped:
            return
        # The hour a declaration outlives its last worker counts from now.
        renewal = asyncio.ensure_future(self._left(worker.worker_id, list(worker.skills)))
        self._background.add(renewal)
        renewal.add_done_callback(self._background.discard)

    async def _left(self, worker_id: str, keys: list[str]) -> None:
        with contextlib.suppress(SkillwireError):
            await self._backbone.drop_worker(worker_id)
        await self._renew(keys)
        for key in keys:
            if not self._serving.get(key):
                with contextlib.suppress(SkillwireError):
                    await self._backbone.unmark_serving(self.process, key)

    async def deliver(self, worker: RemoteWorker, message: WorkerMessage) -> bool:
        """Pass a worker's message to its work item (waiting for room); False when the worker
        holds no work by that id."""
        work = worker.work.get(message.work_id)
        if work is None:
            return False
        await work.inbox.put(message)
        return True

    def in_flight(self) -> dict[str, int]:
        """Unfinished work items per ``app/skill`` on this process's workers."""
        counts: dict[str, int] = defaultdict(int)
        for worker in self.workers.values():
            for work in worker.work.values():
                counts[work.skill] += 1
        return dict(counts)

    def serves(self, key: str) -> bool:
        """Whether a worker connected here serves ``key``."""
        return bool(self._serving.get(key))

    def capacity(self) -> dict[str, int]:
        """Free slots per ``app/skill`` on this process's workers, less the sub-requests
        already waiting here for one: how much more work to claim from the skills' queues."""
        room: dict[str, int] = {}
        for key, workers in self._serving.items():
            free = sum(w.free for w in workers) - len(self._waiting.get(key, ()))
            if free > 0:
                room[key] = free
        return room

    # -- dispatch --------------------------------------------------------------------------
    def _free_worker(self, key: str) -> RemoteWorker | None:
        best: RemoteWorker | None = None
        for worker in self._serving.get(key, ()):
            if worker.free > 0 and (best is None or worker.free > best.free):
                best = worker
        return best

    def _wake(self, key: str) -> None:
        """Wake as many waiters of ``key`` as there are free slots for it."""
        free = sum(w.free for w in self._serving.get(key, ()))
        waiting = self._waiting.get(key)
        while waiting and free > 0:
            future = waiting.popleft()
            if not future.done():
                future.set_result(None)
                free -= 1
        if waiting is not None and not waiting:
            del self._waiting[key]
        if free > 0 and self.on_capacity is not None:
            self.on_capacity(key)

    async def _wait(self, key: str) -> None:
        future = asyncio.get_running_loop().create_future()
        self._waiting[key].append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._wake(key)  # woken, then stopped: the slot goes to the next in line
            raise

    async def _append(self, ctx: Context, type_: EventType, data: dict[str, Any]) -> None:
        await ctx.flush()
        if not await self._backbone.append(ctx.task_id, type_, ctx.index, data):
            raise Discarded(ctx.task_id)

    async def run(self, value: Any, *, ctx: Context, local_only: bool = False) -> None:
        """Run one sub-request on a remote worker (the function of every remote skill).

        With no free worker here, a shared backbone's sub-request goes to the skill's queue,
        for whichever process has room (unless it was claimed from there: ``local_only``,
        which waits for a worker here while one serves the skill here)."""
        key = f"{ctx.app}/{ctx.skill}"
        attempt = 0
        queued = False
        while True:
            worker = self._free_worker(key)
            if worker is None:
                shared = self._backbone.shares_remote_work
                if shared and (not local_only or not self._serving.get(key)):
                    if attempt and not local_only:  # its losses here go with it
                        await self._count_attempt(ctx, key, 0, True, add=attempt)
                    await self._hand_off(key, value, ctx)
                if not queued and not self._serving.get(key):
                    await self._append(ctx, EventType.REQUEST_QUEUED, {"reason": "no_worker"})
                    queued = True
                await self._wait(key)
                continue
            work = RemoteWork(f"wrk_{secrets.token_urlsafe(12)}", worker, key)
            worker.work[work.work_id] = work  # its slot is taken before the next await
            # Started here, where a worker takes it (not by the engine before the hand-off
            # check): a sub-request passed to another process's queue starts once, there.
            try:
                if local_only:  # claimed from the skill's queue: past its no_worker deadline?
                    await self._check_deadline(ctx, key)
                attempt = await self._count_attempt(ctx, key, attempt, local_only)
                await self._append(ctx, EventType.REQUEST_STARTED, {})
            except BaseException:  # (cancelled or discarded: the worker never saw it)
                worker.work.pop(work.work_id, None)
                work.inbox.close()
                self._wake(key)
                raise
            ctx.rerun()
            queued = False
            try:
                message = Work(
                    work_id=work.work_id,
                    task_id=ctx.task_id,
                    index=ctx.index,
                    app=ctx.app,
                    skill=ctx.skill,
                    input=value,
                    attempt=attempt,
                )
                if not worker.send(encode_worker_message(message)):
                    work.inbox.lose()
                await self._relay(work, ctx)
                return
            except WorkerLost:
                log.warning(
                    "worker %s lost work %s (task %s request %d, attempt %d)",
                    worker.name or worker.worker_id,
                    work.work_id,
                    ctx.task_id,
                    ctx.index,
                    attempt,
                )
                if attempt >= self._max_attempts:
                    raise SkillError(
                        f"the workers running this were lost {attempt} times; not retrying",
                        code="WORKER_LOST",
                    ) from None
            finally:
                self._release(work)

    async def _count_attempt(
        self, ctx: Context, key: str, attempt: int, claimed: bool, *, add: int = 1
    ) -> int:
        """This attempt's number. Work claimed from a skill's queue (it moved between
        processes) counts in the backbone, so a lost worker on any of them counts toward
        ``WORKER_LOST``; work that never moved counts here (no round trip)."""
        if not claimed:
            return attempt + add
        ttl = self._timeout_of(key) * self._max_attempts + DECLARATION_TTL
        counted = await self._backbone.count_remote_attempt(ctx.task_id, ctx.index, ttl, add)
        return counted if counted is not None else attempt + add

    async def _check_deadline(self, ctx: Context, key: str) -> None:
        """The sub-request starts on a worker now: its no_worker deadline no longer applies,
        unless it has passed (then it fails with TIMEOUT as it would have where it queued)."""
        deadline = await self._backbone.take_remote_deadline(ctx.task_id, ctx.index)
        if deadline is not None and deadline <= time.time():
            raise SkillError(self._no_worker_message(key), code=ErrorCode.TIMEOUT)

    def _no_worker_message(self, key: str) -> str:
        return f"{key} did not finish within {self._limit_of(key):g} s (no worker)"

    def _limit_of(self, key: str) -> float:
        return self._timeouts.get(key.replace("/", ".")) or self._timeout_of(key)

    async def _hand_off(self, key: str, value: Any, ctx: Context) -> None:
        """Queue the sub-request for whichever process has a free worker for it; raises
        ``HandedOff``. Served nowhere, it shows ``no_worker`` and fails at its timeout."""
        if not await self._backbone.served_anywhere(key):
            await self._append(ctx, EventType.REQUEST_QUEUED, {"reason": "no_worker"})
            limit = self._limit_of(key)
            # The deadline is kept in the backbone too: should this process die, another
            # enforces it (``_sweep``); whichever takes it first fails the request.
            await self._backbone.set_remote_deadline(ctx.task_id, ctx.index, time.time() + limit)
            self._fail_if_queued_after(limit, ctx.task_id, ctx.index)
        else:
            await ctx.flush()
        item = WorkItem(ctx.task_id, ctx.app, ctx.skill, ctx.principal, [ctx.index], [value])
        await self._backbone.offer_remote(key, item)
        raise HandedOff(ctx.task_id)

    def _timeout_of(self, key: str) -> float:
        cached = self._specs.get(key)
        declared = cached[0].timeout if cached is not None else None
        return declared or self._default_timeout

    def _fail_if_queued_after(self, seconds: float, task_id: str, index: int) -> None:
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._timers.discard(timer)
            if self._stopped:
                return
            job = asyncio.ensure_future(self._fail_at_deadline(task_id, index))
            self._background.add(job)
            job.add_done_callback(self._background.discard)

        timer = loop.call_later(seconds, fire)
        self._timers.add(timer)

    async def _fail_at_deadline(self, task_id: str, index: int) -> None:
        with contextlib.suppress(SkillwireError):
            if await self._backbone.take_remote_deadline(task_id, index) is None:
                return  # started meanwhile, or another process enforced it
            await self._fail_if_queued(task_id, index)

    async def _fail_if_queued(self, task_id: str, index: int) -> None:
        with contextlib.suppress(SkillwireError):
            stored = await self._backbone.get_task(task_id)
            if stored is None or stored.task.requests[index].status != RequestStatus.QUEUED:
                return
            task = stored.task
            message = self._no_worker_message(f"{task.app}/{task.skill}")
            error = {"error": {"code": ErrorCode.TIMEOUT, "message": message, "details": {}}}
            await self._backbone.append(task_id, EventType.REQUEST_FAILED, index, error)

    def _release(self, work: RemoteWork) -> None:
        worker = work.worker
        if worker.work.pop(work.work_id, None) is not None:
            if not work.finished and not work.inbox.lost:
                worker.send(encode_worker_message(CancelWork(work_id=work.work_id)))
            self._wake(work.skill)
        work.inbox.close()

    async def _relay(self, work: RemoteWork, ctx: Context) -> None:
        """Turn the worker's messages into the Context calls an in-process skill makes."""
        while True:
            message = await work.inbox.get()
            if isinstance(message, WorkProgress):
                await ctx.progress(message.progress, message.message)
            elif isinstance(message, WorkOutput):
                await ctx.output(message.output)
            elif isinstance(message, WorkDelta):
                try:
                    await ctx.append(message.output, message.field, message.append)
                except (TypeError, ValueError) as exc:  # (the worker is told to stop)
                    raise SkillError(
                        f"the worker sent a bad delta: {exc}", code="BAD_REQUEST"
                    ) from None
            elif isinstance(message, WorkCompleted):
                work.finished = True
                ctx.set_result(message.data)
                return
            elif isinstance(message, WorkFailed):
                work.finished = True
                error = message.error
                raise SkillError(error.message, code=error.code, details=error.details)
