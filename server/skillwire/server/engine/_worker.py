"""Runs sub-requests: claims work items from the backbone and turns skills into events.

A process runs ``concurrency`` consumer loops, which is its global limit on sub-requests in
flight. Each sub-request runs in its own asyncio task so that a cancel signal interrupts it
without touching the loop that claimed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import defaultdict
from typing import Any

import msgspec

from skillwire.protocol import (
    ErrorCode,
    EventType,
    NotFound,
    SkillError,
    to_builtins,
)

from ..backbone import Backbone, Claim
from ._app import SkillSpec
from ._context import Context, Discarded
from ._registry import Registry

__all__ = ["WorkerPool"]

log = logging.getLogger("skillwire.worker")


def _failure(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


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
    ) -> None:
        self._backbone = backbone
        self._registry = registry
        self._concurrency = concurrency
        self._default_timeout = default_timeout
        self._timeouts = timeouts or {}
        self._claim_timeout = claim_timeout
        self._consumer = f"{os.uname().nodename}:{os.getpid()}:{id(self):x}"
        self._loops: list[asyncio.Task[None]] = []
        self._running: dict[str, set[asyncio.Task[None]]] = defaultdict(set)
        self._stopping = False

    @property
    def in_flight(self) -> int:
        return sum(len(tasks) for tasks in self._running.values())

    async def start(self) -> None:
        self._backbone.add_cancel_listener(self._on_cancel)
        self._loops = [
            asyncio.create_task(self._consume(), name=f"skillwire-worker-{i}")
            for i in range(self._concurrency)
        ]

    async def stop(self) -> None:
        self._stopping = True
        for loop in self._loops:
            loop.cancel()
        for loop in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        self._loops = []

    def _on_cancel(self, task_id: str) -> None:
        for running in list(self._running.get(task_id, ())):
            running.cancel()

    def timeout_for(self, spec: SkillSpec) -> float:
        key = f"{spec.app}.{spec.name}"
        return self._timeouts.get(key) or spec.timeout or self._default_timeout

    async def _consume(self) -> None:
        while not self._stopping:
            claim = await self._backbone.claim(self._consumer, self._claim_timeout)
            if claim is None:
                continue
            try:
                await self._run_claim(claim)
            except asyncio.CancelledError:
                await self._backbone.requeue(claim)
                raise
            await self._backbone.ack(claim)

    async def _run_claim(self, claim: Claim) -> None:
        item = claim.item
        for index, raw in zip(item.indices, item.inputs, strict=True):
            runner = asyncio.create_task(
                self._run_request(item.task_id, item.app, item.skill, item.owner, index, raw)
            )
            self._running[item.task_id].add(runner)
            try:
                await asyncio.wait({runner})
            finally:
                self._running[item.task_id].discard(runner)
                if not self._running[item.task_id]:
                    del self._running[item.task_id]
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise asyncio.CancelledError
            if runner.cancelled():
                return  # the task was cancelled: the rest of this chain never starts

    async def _run_request(
        self, task_id: str, app: str, skill: str, owner: str, index: int, raw: Any
    ) -> None:
        append = self._backbone.append
        try:
            spec: SkillSpec | None = self._registry.get(app, skill)
        except NotFound:
            spec = None
        if spec is None:
            await append(
                task_id, EventType.REQUEST_FAILED, index,
                _failure(ErrorCode.INTERNAL_ERROR, f"no worker knows the skill {app}/{skill}"),
            )
            return
        if not await append(task_id, EventType.REQUEST_STARTED, index, {}):
            return
        ctx = Context(self._backbone, task_id, index, app, skill, owner)
        try:
            value = msgspec.convert(raw, spec.input_type)
            async with asyncio.timeout(self.timeout_for(spec)):
                if spec.is_generator:
                    async for item in spec.call(ctx, value):
                        await ctx.output(item)
                else:
                    result = await spec.call(ctx, value)
                    if result is not None:
                        await ctx.output(result)
        except Discarded:
            return
        except SkillError as exc:
            await append(
                task_id, EventType.REQUEST_FAILED, index,
                _failure(exc.code, exc.message, to_builtins(exc.details)),
            )
            return
        except TimeoutError:
            await append(
                task_id, EventType.REQUEST_FAILED, index,
                _failure(
                    ErrorCode.TIMEOUT,
                    f"{app}/{skill} did not finish within {self.timeout_for(spec):g} s",
                ),
            )
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("skill %s/%s failed on task %s request %d", app, skill, task_id, index)
            await append(
                task_id, EventType.REQUEST_FAILED, index,
                _failure(ErrorCode.INTERNAL_ERROR, "the skill raised an unexpected error"),
            )
            return
        await append(task_id, EventType.REQUEST_COMPLETED, index, {})
