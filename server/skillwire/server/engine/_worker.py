"""Runs sub-requests: claims work from the backbone and turns skills into events.

One fetch loop per process claims as many items as there are free slots (``concurrency``
is the process's limit on sub-requests in flight); each claim runs as one asyncio task, its
sub-requests one after the other inside it (no task per sub-request: an idle running task
costs one asyncio task). A cancel signal and a sub-request's timeout cancel that task, and
the claim tells them from a stop of the process by counting the cancels it made (``Run``).
A second loop renews the lease on everything in flight, so a slow sub-request is
not taken over by another worker, while one whose worker died is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from skillwire.protocol import (
    BackboneUnavailable,
    ErrorCode,
    EventType,
    IllegalTransition,
    NotFound,
    SkillError,
    format_time,
    to_builtins,
)

from .._metrics import Metrics
from .._ratelimit import RateLimits
from ..backbone import Backbone, Claim
from ._app import SkillSpec
from ._calls import ChildCalls
from ._context import Context, Discarded
from ._interrupts import Deadlines, Run
from ._registry import Registry

if TYPE_CHECKING:
    from ._app import SkillSpec as _Spec


class SkillFinder(Protocol):
    """Where a pool looks up skills its registry does not hold (remote skills)."""

    async def find(self, app: str, skill: str) -> _Spec | None: ...


__all__ = ["SkillFinder", "WorkQueue", "WorkerPool"]

_ENDINGS = {EventType.REQUEST_COMPLETED: "completed", EventType.REQUEST_FAILED: "failed"}

log = logging.getLogger("skillwire.worker")


def _failure(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _refused(exc: IllegalTransition) -> dict[str, Any]:
    """The failure of a request whose skill emitted an event the task cannot take (a delta
    to an output it never emitted, or to a field that is not a string)."""
    return _failure(ErrorCode.INTERNAL_ERROR, f"the skill emitted an event refused: {exc.message}")


def _input(spec: SkillSpec, raw: Any) -> Any:
    """The skill's input, passed straight into its call (no local keeps it while it runs).

    A remote skill's input goes to its worker as it came (checked at call time)."""
    return raw if spec.remote else msgspec.convert(raw, spec.input_type)


class WorkQueue(Protocol):
    """Where a pool's claims come from and go back to: the backbone's work queue, or a
    remote skill's queue (``RemoteQueue``)."""

    async def claim(self, consumer: str, count: int, timeout: float) -> list[Claim]: ...

    async def touch(self, consumer: str, claims: list[Claim]) -> None: ...

    async def ack(self, claim: Claim) -> None: ...

    async def requeue(self, claim: Claim) -> None: ...


class WorkerPool:
    def __init__(
        self,
        backbone: Backbone,
        registry: Registry,
        *,
        concurrency: int,
        default_timeout: float,
        timeouts: dict[str, float] | None = None,
        claim_timeout: float = 1.0,
        lease: float = 30.0,
        limits: RateLimits | None = None,
        metrics: Metrics | None = None,
        requeue_on_stop: bool = True,
        max_deliveries: int = 5,
        calls: ChildCalls | None = None,
        remote: SkillFinder | None = None,
        queue: WorkQueue | None = None,
        fetch: bool = True,
    ) -> None:
        self.calls = calls  # what ``ctx.call`` creates child tasks with
        self._remote = remote
        # fetch=False: the pool claims nothing itself; claims are handed to run_claim.
        self._fetching = fetch
        self._queue: WorkQueue = queue if queue is not None else backbone
        self._max_deliveries = max_deliveries
        self._requeue_on_stop = requeue_on_stop
        self._limits = limits
        self._metrics = metrics
        self._backbone = backbone
        self._registry = registry
        self._slots = concurrency
        self._default_timeout = default_timeout
        self._timeouts = timeouts or {}
        self._claim_timeout = claim_timeout
        self._lease = lease
        self.consumer = f"{os.uname().nodename}:{os.getpid()}:{id(self):x}"
        self._loops: list[asyncio.Task[None]] = []
        self._claims: dict[asyncio.Task[None], Claim] = {}
        # Claims of skills this process does not run (remote workers' skills): they wait for
        # a worker, not for this process, so they take no slot (nor block in-process work).
        self._elsewhere: dict[asyncio.Task[None], Claim] = {}
        # The claims running a request of each task: the claim itself while it is the only one
        # (the usual case: no list per task), a list while a task's chains run side by side.
        self._running: dict[str, Run | list[Run]] = {}
        self._slot_freed = asyncio.Event()
        self._deadlines = Deadlines()
        self._stopping = False

    @property
    def in_flight(self) -> int:
        return sum(len(h) if isinstance(h, list) else 1 for h in self._running.values())

    async def start(self) -> None:
        self._backbone.add_cancel_listener(self._on_cancel)
        self._loops = [asyncio.create_task(self._renew(), name="skillwire-worker-lease")]
        if self._fetching:
            self._backbone.hand_work_to(self._take)
            self._loops.append(asyncio.create_task(self._fetch(), name="skillwire-worker-fetch"))

    async def stop(self, grace: float = 0.0) -> None:
        """Stop claiming; give in-flight work ``grace`` seconds, then stop what is left.

        What is left is requeued for another process (a shared backbone), or failed with
        code ``SHUTDOWN`` where no other process could pick it up (the memory backbone), so
        no task is left ``running``.
        """
        self._stopping = True
        for loop in self._loops:
            loop.cancel()
        for loop in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        self._loops = []
        jobs = [*self._claims, *self._elsewhere]
        # Only work running here gets the grace: a remote skill's waits on workers whose
        # connections the drain already closed (its work goes back to the queue, or fails).
        if self._claims and grace > 0:
            await asyncio.wait(list(self._claims), timeout=grace)
        for job in jobs:
            job.cancel()
        for job in jobs:
            with contextlib.suppress(asyncio.CancelledError):
                await job

    def _on_cancel(self, task_id: str) -> None:
        held = self._running.get(task_id)
        for run in list(held) if isinstance(held, list) else [held] if held else []:
            run.interrupt()

    def timeout_for(self, spec: SkillSpec) -> float:
        key = f"{spec.app}.{spec.name}"
        return self._timeouts.get(key) or spec.timeout or self._default_timeout

    # -- claiming ------------------------------------------------------------------------
    def _take(self, claim: Claim) -> bool:
        """Work handed over by the backbone as it is created: run it now if a slot is free."""
        if self._stopping or not self._loops:
            return False
        if self._takes_slot(claim) and len(self._claims) >= self._slots:
            return False
        self._start(claim)
        return True

    def _takes_slot(self, claim: Claim) -> bool:
        return self._remote is None or self._registry.has(claim.item.app, claim.item.skill)

    def run_claim(self, claim: Claim) -> None:
        """Run a claim taken elsewhere (a pool that does not fetch)."""
        self._start(claim)

    def _start(self, claim: Claim) -> None:
        run = Run(claim)
        run.job = job = asyncio.create_task(self._run_claim(run))
        if self._takes_slot(claim):
            self._claims[job] = claim
        else:
            self._elsewhere[job] = claim

    async def _fetch(self) -> None:
        backoff = 0.1
        while not self._stopping:
            free = self._slots - len(self._claims)
            if free <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            try:
                claims = await self._queue.claim(self.consumer, free, self._claim_timeout)
            except BackboneUnavailable as exc:
                log.warning("cannot claim work: %s", exc.message)
                if self._metrics is not None:
                    self._metrics.backbone_errors.labels("worker").inc()
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.1
            for claim in claims:
                if self._takes_slot(claim) and len(self._claims) >= self._slots:
                    # work handed over took the slot meanwhile
                    with contextlib.suppress(BackboneUnavailable):
                        await self._queue.requeue(claim)
                    continue
                self._start(claim)

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self._lease / 3)
            with contextlib.suppress(BackboneUnavailable):
                claims = [*self._claims.values(), *self._elsewhere.values()]
                await self._queue.touch(self.consumer, claims)

    async def _run_claim(self, run: Run) -> None:
        claim = run.claim
        try:
            if claim.deliveries > self._max_deliveries:
                await self._give_up(claim)
            else:
                # The chain's requests one after the other, in this task and inline: the skill is
                # called from this coroutine (what comes before and after its call are coroutines
                # of their own, done before it waits), so an idle running task holds this one
                # frame besides the skill's. Indexed (not zipped, nor a range's iterator): nothing
                # but the index is held.
                i = -1
                while (i := i + 1) < len(claim.item.indices):
                    self._enter(run)
                    run.outcome = "discarded"
                    started = time.monotonic()
                    try:
                        index = claim.item.indices[i]
                        spec = await self._prepare(run, index)
                        if spec is not None:  # None: it failed, or never starts
                            ctx = self._context(run, index)
                            failure: dict[str, Any] | None = None  # None: it completed
                            discarded = False
                            try:
                                run.arm(self._deadlines, self.timeout_for(spec))
                                try:
                                    if spec.is_generator:
                                        async for output in spec.call(
                                            ctx, _input(spec, claim.item.inputs[i])
                                        ):
                                            await ctx.output(output)
                                    else:
                                        output = await spec.call(
                                            ctx, _input(spec, claim.item.inputs[i])
                                        )
                                        if output is not None:
                                            await ctx.output(output)
                                finally:
                                    run.disarm()
                            except Discarded:
                                discarded = True  # the task finished meanwhile
                            except BackboneUnavailable:
                                raise
                            except SkillError as exc:
                                failure = _failure(exc.code, exc.message, to_builtins(exc.details))
                            except TimeoutError:
                                failure = self._timed_out(run, spec)
                            except asyncio.CancelledError:
                                if not run.expired():
                                    ctx.abandon()
                                    raise
                                failure = self._timed_out(run, spec)
                            except IllegalTransition as exc:
                                failure = _refused(exc)
                            except Exception:
                                failure = self._crashed(run, index)
                            if not discarded:
                                await self._end(run, ctx, index, failure)
                    except asyncio.CancelledError:
                        if not run.settle():
                            raise  # this claim is being stopped: it is requeued (or failed)
                        break  # the task was cancelled: the rest of this chain never starts
                    finally:
                        self._leave(run)
                        self._observe(run, started)
                    if not run.settle():
                        raise asyncio.CancelledError  # a skill swallowed the stop: it still stops
                    if run.cancelled:
                        break  # the skill swallowed the task's cancel: the rest never starts
        except asyncio.CancelledError:
            with contextlib.suppress(BackboneUnavailable):
                if self._requeue_on_stop:
                    await self._queue.requeue(claim)
                else:
                    failure = _failure(
                        ErrorCode.SHUTDOWN, "the server shut down before this finished"
                    )
                    for index in claim.item.indices:
                        await self._backbone.append(
                            claim.item.task_id, EventType.REQUEST_FAILED, index, failure
                        )
            raise
        except BackboneUnavailable as exc:
            # Not acked: the item is delivered again once its lease lapses.
            log.warning("backbone lost while running %s: %s", claim.item.task_id, exc.message)
        else:
            with contextlib.suppress(BackboneUnavailable):
                await self._queue.ack(claim)
        finally:
            self._claims.pop(run.job, None)
            self._elsewhere.pop(run.job, None)
            self._slot_freed.set()

    def _enter(self, run: Run) -> None:
        task_id = run.claim.item.task_id
        held = self._running.get(task_id)
        if held is None:
            self._running[task_id] = run
        elif isinstance(held, list):
            held.append(run)
        else:
            self._running[task_id] = [held, run]

    def _leave(self, run: Run) -> None:
        task_id = run.claim.item.task_id
        held = self._running[task_id]
        if held is run:
            del self._running[task_id]
        elif isinstance(held, list):
            held.remove(run)
            if len(held) == 1:
                self._running[task_id] = held[0]

    def _observe(self, run: Run, started: float) -> None:
        if self._metrics is not None and run.outcome != "discarded":
            item = run.claim.item
            self._metrics.subrequest_seconds.labels(item.app, item.skill, run.outcome).observe(
                time.monotonic() - started
            )

    async def _give_up(self, claim: Claim) -> None:
        """An item whose worker was lost again and again: fail it so no task stays running."""
        log.error(
            "giving up on task %s requests %s after %d deliveries",
            claim.item.task_id,
            claim.item.indices,
            claim.deliveries,
        )
        failure = _failure(
            ErrorCode.WORKER_LOST,
            f"the worker running this was lost {claim.deliveries - 1} times; not retrying",
        )
        for index in claim.item.indices:
            await self._backbone.append(
                claim.item.task_id, EventType.REQUEST_FAILED, index, failure
            )

    # -- one sub-request -----------------------------------------------------------------
    async def _provider_slot(self, spec: SkillSpec, task_id: str, index: int) -> bool:
        """Wait (``request.queued``) until the skill's provider limit allows a call.

        False when the task finished meanwhile (cancelled): the request never starts.
        """
        if spec.provider is None or self._limits is None:
            return True
        found = self._limits.provider_limit(spec.provider, spec.name, spec.model)
        if found is None:
            return True
        key, item = found
        while True:
            decision = await self._limits.hit(item, "provider", key)
            if decision is None or decision.allowed:
                return True
            wait = decision.reset_after + random.uniform(0, 0.05)
            queued = {
                "reason": "provider_rate_limit",
                "retry_at": format_time(time.time() + wait),
            }
            if not await self._backbone.append(task_id, EventType.REQUEST_QUEUED, index, queued):
                return False
            if self._metrics is not None:
                self._metrics.rate_limited.labels("provider").inc()
            await asyncio.sleep(wait)

    async def _append(self, run: Run, type_: EventType, index: int, data: Any) -> bool:
        item = run.claim.item
        events = await self._backbone.append(item.task_id, type_, index, data)
        if events and type_ in _ENDINGS:
            run.outcome = _ENDINGS[type_]
        if self._metrics is not None:
            for event in events:
                if event.terminal:
                    status = event.type.removeprefix("task.")
                    self._metrics.tasks_finished.labels(item.app, item.skill, status).inc()
        return bool(events)

    async def _prepare(self, run: Run, index: int) -> SkillSpec | None:
        """The skill of a request about to run, once it may start (``request.started``
        appended); None when it never starts: no such skill (the request failed), or the
        task finished meanwhile."""
        item = run.claim.item
        task_id, app, skill = item.task_id, item.app, item.skill
        try:
            spec: SkillSpec | None = self._registry.get(app, skill)
        except NotFound:
            spec = await self._remote.find(app, skill) if self._remote is not None else None
        if spec is None:
            await self._append(
                run,
                EventType.REQUEST_FAILED,
                index,
                _failure(ErrorCode.INTERNAL_ERROR, f"no worker knows the skill {app}/{skill}"),
            )
            return None
        if not await self._provider_slot(spec, task_id, index):
            return None
        if not spec.starts_itself and not await self._append(
            run, EventType.REQUEST_STARTED, index, {}
        ):
            return None
        return spec

    async def _end(
        self, run: Run, ctx: Context, index: int, failure: dict[str, Any] | None
    ) -> None:
        """After the skill's call: its outputs written behind, then the request's ending
        (``failure`` None: it completed)."""
        try:
            await ctx.flush()  # the outputs written behind the skill come before its end
        except Discarded:
            return
        except IllegalTransition as exc:  # written behind: refused after the skill went on
            failure = _refused(exc)
        except asyncio.CancelledError:
            ctx.abandon()
            raise
        if failure is None:
            await self._append(run, EventType.REQUEST_COMPLETED, index, ctx.result)
        else:
            await self._append(run, EventType.REQUEST_FAILED, index, failure)

    def _context(self, run: Run, index: int) -> Context:
        item = run.claim.item
        return Context(
            self._backbone, item.task_id, index, item.app, item.skill, item.owner, calls=self.calls
        )

    def _crashed(self, run: Run, index: int) -> dict[str, Any]:
        """The failure of a request whose skill raised something unexpected (logged here,
        inside the ``except`` that caught it)."""
        item = run.claim.item
        log.exception(
            "skill %s/%s failed on task %s request %d", item.app, item.skill, item.task_id, index
        )
        return _failure(ErrorCode.INTERNAL_ERROR, "the skill raised an unexpected error")

    def _timed_out(self, run: Run, spec: SkillSpec) -> dict[str, Any]:
        item = run.claim.item
        limit = self.timeout_for(spec)
        message = f"{item.app}/{item.skill} did not finish within {limit:g} s"
        return _failure(ErrorCode.TIMEOUT, message)
