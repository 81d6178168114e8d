"""Skills served by remote workers: declarations, the workers connected to this process, and
dispatch of work to them.

A remote skill is a ``SkillSpec`` like any other. Its function (``RemoteSkills.run``) waits for
a connected worker with a free slot, sends it the work, and relays what the worker answers
through the same ``Context`` an in-process skill uses: the lifecycle table, cancel, timeouts,
write-behind and the worker pool's lease apply unchanged. A worker that disconnects (or falls
silent) loses its unfinished work, which is sent again to another worker (``attempt`` + 1),
after a fresh ``request.started``, up to ``max_attempts``.

What a worker sends for one work item goes through a small bounded inbox: when the skill side
cannot keep up (the store is slow), the connection's reader waits for room, so the gateway
stops reading that socket and nothing is dropped.

Declarations live in the backbone (every gateway sees them) until an hour after the last
worker serving them left; the first one fixes a skill's schema and mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import jsonschema  # type: ignore[import-untyped]
import msgspec

from skillwire.protocol import (
    CancelWork,
    Conflict,
    EventType,
    NotFound,
    Skill,
    SkillDeclaration,
    SkillError,
    SkillMode,
    SkillwireError,
    ValidationError,
    Work,
    WorkCompleted,
    WorkDelta,
    WorkerMessage,
    WorkFailed,
    WorkOutput,
    WorkProgress,
    encode_worker_message,
)

from ._app import SkillSpec
from ._context import Context, Discarded
from ._registry import Registry

if TYPE_CHECKING:
    from ..backbone import Backbone

__all__ = ["RemoteSkills", "RemoteWorker", "WorkerLost"]

DECLARATION_TTL = 3600.0  # a declaration outlives the last worker serving it by an hour
REFRESH_EVERY = 60.0  # how often connected workers' declarations are renewed
INBOX_LIMIT = 64  # messages of one work item waiting to be stored before the reader waits
CACHE_FOR = 2.0  # seconds a declaration read from the backbone is trusted

log = logging.getLogger("skillwire.workers")


class WorkerLost(Exception):
    """The worker running a work item disconnected or fell silent before it finished."""


class _RemoteInput(msgspec.Struct):
    """Stands for a remote skill's input type: its requests are checked against the declared
    JSON Schema instead, and passed on as they came."""


def _wake(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


class _Inbox:
    """What a worker said about one work item, waiting to be relayed; bounded."""

    __slots__ = ("_items", "_limit", "_reader", "_room", "closed", "lost")

    def __init__(self, limit: int = INBOX_LIMIT) -> None:
        self._items: deque[WorkerMessage] = deque()
        self._limit = limit
        self._reader: asyncio.Future[None] | None = None
        self._room: asyncio.Future[None] | None = None
        self.lost = False
        self.closed = False

    async def put(self, message: WorkerMessage) -> None:
        """Queue a message, waiting while the inbox is full (the socket is not read meanwhile)."""
        while len(self._items) >= self._limit and not self.closed:
            self._room = asyncio.get_running_loop().create_future()
            await self._room
        if not self.closed:
            self._items.append(message)
            _wake(self._reader)

    async def get(self) -> WorkerMessage:
        """The next message; raises ``WorkerLost`` once the worker is gone and none is left."""
        while not self._items:
            if self.lost:
                raise WorkerLost
            self._reader = asyncio.get_running_loop().create_future()
            await self._reader
        message = self._items.popleft()
        _wake(self._room)
        return message

    def lose(self) -> None:
        self.lost = True
        _wake(self._reader)

    def close(self) -> None:
        self.closed = True
        self._items.clear()
        _wake(self._room)


class RemoteWork:
    __slots__ = ("finished", "inbox", "skill", "work_id", "worker")

    def __init__(self, work_id: str, worker: RemoteWorker, skill: str) -> None:
        self.work_id = work_id
        self.worker = worker
        self.skill = skill
        self.inbox = _Inbox()
        self.finished = False


class RemoteWorker:
    """One connected worker, as the dispatcher sees it: ``send`` queues a frame to it (False
    when it could not: the connection is going away)."""

    def __init__(
        self,
        worker_id: str,
        name: str,
        principal: str,
        concurrency: int,
        send: Callable[[bytes], bool],
    ) -> None:
        self.worker_id = worker_id
        self.name = name
        self.principal = principal
        self.concurrency = concurrency
        self.send = send
        self.skills: list[str] = []
        self.work: dict[str, RemoteWork] = {}
        self.connected_at = time.time()
        self.last_seen = self.connected_at

    @property
    def free(self) -> int:
        return self.concurrency - len(self.work)


def _checker(schema: dict[str, Any]) -> Callable[[Any, str], None]:
    """A request check against a declared JSON Schema (422 naming the field and constraint)."""
    validator_class = jsonschema.validators.validator_for(schema)
    validator = validator_class(schema)

    def check(value: Any, field: str) -> None:
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
        if error is None:
            return
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        name = f"{field}{path}"
        constraint = f"{error.validator}: {error.message}"
        raise ValidationError(
            f"invalid `{name}`: {error.message}", details={"field": name, "constraint": constraint}
        )

    return check


def check_schema(declaration: SkillDeclaration) -> None:
    """Raise ``ValidationError`` for an input schema that is not a valid JSON Schema."""
    try:
        jsonschema.validators.validator_for(declaration.input_schema).check_schema(
            declaration.input_schema
        )
    except jsonschema.exceptions.SchemaError as exc:
        raise ValidationError(
            f"skill {declaration.key}: input_schema is not a valid JSON Schema: {exc.message}",
            details={"field": "input_schema", "constraint": exc.message, "skill": declaration.key},
        ) from None


class RemoteSkills:
    def __init__(
        self,
        backbone: Backbone,
        registry: Registry,
        *,
        max_attempts: int = 5,
        declaration_ttl: float = DECLARATION_TTL,
    ) -> None:
        self._backbone = backbone
        self._registry = registry
        self._max_attempts = max_attempts
        self._ttl = declaration_ttl
        self.workers: dict[str, RemoteWorker] = {}
        self._serving: dict[str, list[RemoteWorker]] = defaultdict(list)
        self._waiting: dict[str, deque[asyncio.Future[None]]] = defaultdict(deque)
        self._specs: dict[str, tuple[SkillDeclaration, SkillSpec, float]] = {}
        self._refresher: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()

    # -- life ------------------------------------------------------------------------------
    async def start(self) -> None:
        self._refresher = asyncio.create_task(self._refresh(), name="skillwire-declarations")

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None

    async def _refresh(self) -> None:
        """Renew the declarations of the skills connected workers serve."""
        while True:
            await asyncio.sleep(REFRESH_EVERY)
            await self._renew([key for key, workers in self._serving.items() if workers])

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
    def _spec(self, declaration: SkillDeclaration) -> SkillSpec:
        cached = self._specs.get(declaration.key)
        if cached is not None and cached[0] == declaration:
            spec = cached[1]
        else:
            spec = SkillSpec(
                app=declaration.app,
                name=declaration.skill,
                description=declaration.description,
                mode=SkillMode(declaration.mode),
                fn=self.run,
                input_type=_RemoteInput,
                input_schema=declaration.input_schema,
                spread=False,
                context_param="ctx",
                is_generator=False,
                max_requests=declaration.max_requests,
                timeout=declaration.timeout,
                provider=None,
                model=None,
                remote=True,
                check=_checker(declaration.input_schema),
            )
        self._specs[declaration.key] = (declaration, spec, time.monotonic())
        return spec

    async def find(self, app: str, skill: str) -> SkillSpec | None:
        """The remote skill ``app/skill`` if some worker declared it (here or elsewhere)."""
        key = f"{app}/{skill}"
        cached = self._specs.get(key)
        fresh = cached is not None and time.monotonic() - cached[2] < CACHE_FOR
        if cached is not None and (fresh or self._serving.get(key)):
            return cached[1]
        declaration = await self._backbone.declared_skill(app, skill)
        if declaration is None:
            self._specs.pop(key, None)
            return None
        return self._spec(declaration)

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
        self._wake(key)

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
        # The hour a declaration outlives its last worker counts from now.
        renewal = asyncio.ensure_future(self._renew(list(worker.skills)))
        self._background.add(renewal)
        renewal.add_done_callback(self._background.discard)

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

    async def run(self, value: Any, *, ctx: Context) -> None:
        """Run one sub-request on a remote worker (the function of every remote skill)."""
        key = f"{ctx.app}/{ctx.skill}"
        attempt = 0
        queued = False
        while True:
            worker = self._free_worker(key)
            if worker is None:
                if not queued and not self._serving.get(key):
                    await self._append(ctx, EventType.REQUEST_QUEUED, {"reason": "no_worker"})
                    queued = True
                await self._wait(key)
                continue
            attempt += 1
            if queued or attempt > 1:
                await self._append(ctx, EventType.REQUEST_STARTED, {})
                ctx.rerun()
                queued = False
            work = RemoteWork(f"wrk_{secrets.token_urlsafe(12)}", worker, key)
            worker.work[work.work_id] = work
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
