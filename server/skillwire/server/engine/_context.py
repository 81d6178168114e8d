"""What a running skill sees of its sub-request: ids, progress and outputs."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from skillwire.protocol import BackboneUnavailable, EventType, format_time, to_builtins

if TYPE_CHECKING:
    from ..backbone import Backbone

__all__ = ["Context", "Discarded"]

YIELD_EVERY = 16  # well under any send queue (default 1024): a healthy reader never overflows
WRITE_BEHIND_LIMIT = 256  # events a skill may have on their way before an emit waits


class Discarded(Exception):
    """The task finished (cancelled) under a running skill: stop, nothing more is kept."""


class _WriteBehind:
    """A sub-request's events on their way to a shared backbone, several per round trip.

    An emit queues its event and returns; one flush at a time stores everything queued
    meanwhile in one step, in order. A skill that emits faster than the store keeps up
    waits once ``WRITE_BEHIND_LIMIT`` events are queued. What the store refused or failed
    surfaces at the skill's next emit, or when the worker flushes before it ends the
    sub-request, so an ending event never overtakes an output.
    """

    __slots__ = ("_backbone", "_error", "_flushing", "_index", "_queued", "_refused", "_task_id")

    def __init__(self, backbone: Backbone, task_id: str, index: int) -> None:
        self._backbone = backbone
        self._task_id = task_id
        self._index = index
        self._queued: list[tuple[EventType, Any]] = []
        self._flushing: asyncio.Task[None] | None = None
        self._error: BaseException | None = None
        self._refused = False

    async def add(self, type_: EventType, data: Any) -> None:
        self._check()
        self._queued.append((type_, data))
        if self._flushing is None:
            self._flushing = asyncio.create_task(self._flush())
        elif len(self._queued) >= WRITE_BEHIND_LIMIT:
            await self.drain()

    async def drain(self) -> None:
        """Wait until everything queued is stored; raise what stopped it."""
        while (flushing := self._flushing) is not None:
            await asyncio.wait({flushing})
            if self._flushing is flushing:  # cancelled before it ever ran: no finally of its own
                self._flushing = None
        self._check()

    def abandon(self) -> None:
        """The sub-request was stopped: what is not yet sent is dropped, a flush in flight
        stopped. Its work is requeued (or the task was cancelled), and a late batch must not
        land among the outputs of the run that replaces it."""
        self._queued = []
        self._refused = True
        if self._flushing is not None:
            self._flushing.cancel()
            self._flushing = None

    def _check(self) -> None:
        if self._refused:  # first: an abandoned flush also leaves an error behind
            raise Discarded(self._task_id)
        if self._error is not None:
            raise self._error

    async def _flush(self) -> None:
        try:
            while self._queued and not self._refused:
                batch, self._queued = self._queued, []
                applied, _ = await self._backbone.append_batch(self._task_id, self._index, batch)
                if applied < len(batch):
                    self._refused = True  # the task finished (cancelled): drop the rest
        except asyncio.CancelledError:
            self._error = BackboneUnavailable("the process stopped before the events were stored")
            raise
        except Exception as exc:
            self._error = exc
        finally:
            self._flushing = None


class Context:
    """Passed to a skill that asks for it (a parameter annotated ``Context``)."""

    __slots__ = (
        "_appended",
        "_backbone",
        "_behind",
        "app",
        "index",
        "principal",
        "skill",
        "task_id",
    )

    def __init__(
        self, backbone: Backbone, task_id: str, index: int, app: str, skill: str, principal: str
    ) -> None:
        self._backbone = backbone
        self._appended = 0
        self._behind = _WriteBehind(backbone, task_id, index) if backbone.batches_appends else None
        self.task_id = task_id
        self.index = index
        self.app = app
        self.skill = skill
        self.principal = principal

    async def progress(self, fraction: float, message: str = "") -> None:
        """Report progress (0.0 to 1.0) as a ``request.progress`` event."""
        fraction = min(max(float(fraction), 0.0), 1.0)
        await self._append(EventType.REQUEST_PROGRESS, {"progress": fraction, "message": message})

    async def output(self, item: Any) -> None:
        """Emit one output item now (what returning or yielding a value does too)."""
        await self._append(EventType.REQUEST_OUTPUT, to_builtins(item))

    async def flush(self) -> None:
        """Everything emitted so far is stored (the worker's step before it ends the request).

        Raises ``Discarded`` when the task finished meanwhile."""
        if self._behind is not None:
            await self._behind.drain()

    def abandon(self) -> None:
        """The worker stopped this sub-request: drop the events still on their way."""
        if self._behind is not None:
            self._behind.abandon()

    async def _append(self, type_: EventType, data: Any) -> None:
        if self._behind is not None:
            await self._behind.add(type_, data)
            return
        if not await self._backbone.append(self.task_id, type_, self.index, data):
            raise Discarded(self.task_id)
        # A skill that emits in a tight loop must not starve the writers that carry its events
        # to subscribers (their queues would overflow): yield to the loop every few events.
        # Not after each one: writers then send the events queued meanwhile in one frame,
        # one write for several events instead of one per event per subscriber.
        self._appended += 1
        if self._appended % YIELD_EVERY == 0:
            await asyncio.sleep(0)

    async def requeue(self, reason: str, retry_at: datetime) -> None:
        """Put this request back in the queue until ``retry_at`` (``request.queued`` with
        ``reason``), then start it afresh (``request.started``: its outputs start over).

        For a skill that must wait for a limit it learns of while running (an upstream's
        429 with ``Retry-After``); the slot it holds stays taken while it waits.
        """
        at = retry_at.timestamp()
        queued = {"reason": reason, "retry_at": format_time(at)}
        await self._append(EventType.REQUEST_QUEUED, queued)
        await asyncio.sleep(max(at - time.time(), 0.0))
        await self._append(EventType.REQUEST_STARTED, {})
