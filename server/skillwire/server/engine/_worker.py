"""Runs sub-requests: claims work from the backbone and turns skills into events.

One fetch loop per process claims as many items as there are free slots (``concurrency``
is the process's limit on sub-requests in flight); each claim runs as its own asyncio task
and each sub-request inside it as another, so a cancel signal interrupts exactly the work of
that task. A second loop renews the lease on everything in flight, so a slow sub-request is
not taken over by another worker, while one whose worker died is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections import defaultdict
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
        self._running: dict[str, set[asyncio.Task[None]]] = defaultdict(set)
        self._slot_freed = asyncio.Event()
        self._stopping = False

    @property
    def in_flight(self) -> int:
        return sum(len(tasks) for tasks in self._running.values())

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
        for running in list(self._running.get(task_id, ())):
            running.cancel()

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
        job = asyncio.create_task(self._run_claim(claim))
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

    async def _run_claim(self, claim: Claim) -> None:
        try:
            if claim.deliveries > self._max_deliveries:
                await self._give_up(claim)
            else:
                await self._run_chain(claim)
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
            job = asyncio.current_task()
            self._claims.pop(job, None)  # type: ignore[arg-type]
            self._elsewhere.pop(job, None)  # type: ignore[arg-type]
            self._slot_freed.set()

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

    async def _run_chain(self, claim: Claim) -> None:
        item = claim.item
        claim_job = asyncio.current_task()
        assert claim_job is not None
        for index, raw in zip(item.indices, item.inputs, strict=True):
            runner = asyncio.create_task(
                self._run_request(item.task_id, item.app, item.skill, item.owner, index, raw)
            )
            self._running[item.task_id].add(runner)
            try:
                await runner
            except asyncio.CancelledError:
                if not runner.done() or claim_job.cancelling():
                    # This claim is being stopped (awaiting the runner cancelled it too): let
                    # the sub-request unwind before the claim is requeued.
                    await asyncio.wait({runner})
                    raise
                return  # the task was cancelled: the rest of this chain never starts
            finally:
                self._running[item.task_id].discard(runner)
                if not self._running[item.task_id]:
                    del self._running[item.task_id]
            if claim_job.cancelling():
                raise asyncio.CancelledError  # a skill swallowed the stop: the claim still stops

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

    async def _run_request(
        self, task_id: str, app: str, skill: str, owner: str, index: int, raw: Any
    ) -> None:
        started = time.monotonic()
        outcome = "discarded"

        async def append(task_id: str, type_: EventType, index: int, data: Any) -> bool:
            nonlocal outcome
            events = await self._backbone.append(task_id, type_, index, data)
            if events and type_ in _ENDINGS:
                outcome = _ENDINGS[type_]
            if self._metrics is not None:
                for event in events:
                    if event.terminal:
                        status = event.type.removeprefix("task.")
                        self._metrics.tasks_finished.labels(app, skill, status).inc()
            return bool(events)

        try:
            await self._run_request_body(task_id, app, skill, owner, index, raw, append)
        finally:
            if self._metrics is not None and outcome != "discarded":
                self._metrics.subrequest_seconds.labels(app, skill, outcome).observe(
                    time.monotonic() - started
                )

    async def _run_request_body(
        self,
        task_id: str,
        app: str,
        skill: str,
        owner: str,
        index: int,
        raw: Any,
        append: Any,
    ) -> None:
        try:
            spec: SkillSpec | None = self._registry.get(app, skill)
        except NotFound:
            spec = await self._remote.find(app, skill) if self._remote is not None else None
        if spec is None:
            await append(
                task_id,
                EventType.REQUEST_FAILED,
                index,
                _failure(ErrorCode.INTERNAL_ERROR, f"no worker knows the skill {app}/{skill}"),
            )
            return
        if not await self._provider_slot(spec, task_id, index):
            return
        if not spec.starts_itself and not await append(
            task_id, EventType.REQUEST_STARTED, index, {}
        ):
            return
        ctx = Context(self._backbone, task_id, index, app, skill, owner, calls=self.calls)
        ending: tuple[EventType, dict[str, Any]] = (EventType.REQUEST_COMPLETED, {})
        try:
            # A remote skill's input goes to its worker as it came (checked at call time).
            value = raw if spec.remote else msgspec.convert(raw, spec.input_type)
            async with asyncio.timeout(self.timeout_for(spec)):
                if spec.is_generator:
                    async for output in spec.call(ctx, value):
                        await ctx.output(output)
                else:
                    result = await spec.call(ctx, value)
                    if result is not None:
                        await ctx.output(result)
        except Discarded:
            return
        except BackboneUnavailable:
            raise
        except SkillError as exc:
            failure = _failure(exc.code, exc.message, to_builtins(exc.details))
            ending = (EventType.REQUEST_FAILED, failure)
        except TimeoutError:
            limit = self.timeout_for(spec)
            message = f"{app}/{skill} did not finish within {limit:g} s"
            ending = (EventType.REQUEST_FAILED, _failure(ErrorCode.TIMEOUT, message))
        except asyncio.CancelledError:
            ctx.abandon()
            raise
        except IllegalTransition as exc:
            ending = (EventType.REQUEST_FAILED, _refused(exc))
        except Exception:
            log.exception("skill %s/%s failed on task %s request %d", app, skill, task_id, index)
            failure = _failure(ErrorCode.INTERNAL_ERROR, "the skill raised an unexpected error")
            ending = (EventType.REQUEST_FAILED, failure)
        if ending[0] is EventType.REQUEST_COMPLETED:
            ending = (EventType.REQUEST_COMPLETED, ctx.result)
        try:
            await ctx.flush()  # the outputs written behind the skill come before its end
        except Discarded:
            return
        except IllegalTransition as exc:  # written behind: refused after the skill went on
            ending = (EventType.REQUEST_FAILED, _refused(exc))
        except asyncio.CancelledError:
            ctx.abandon()
            raise
        await append(task_id, ending[0], index, ending[1])
