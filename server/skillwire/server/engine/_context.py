"""What a running skill sees of its sub-request: ids, progress and outputs."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from skillwire.protocol import EventType, to_builtins

if TYPE_CHECKING:
    from ..backbone import Backbone

__all__ = ["Context", "Discarded"]

YIELD_EVERY = 16  # well under any send queue (default 1024): a healthy reader never overflows


class Discarded(Exception):
    """The task finished (cancelled) under a running skill: stop, nothing more is kept."""


class Context:
    """Passed to a skill that asks for it (a parameter annotated ``Context``)."""

    __slots__ = ("_appended", "_backbone", "app", "index", "principal", "skill", "task_id")

    def __init__(
        self, backbone: Backbone, task_id: str, index: int, app: str, skill: str, principal: str
    ) -> None:
        self._backbone = backbone
        self._appended = 0
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

    async def _append(self, type_: EventType, data: Any) -> None:
        if not await self._backbone.append(self.task_id, type_, self.index, data):
            raise Discarded(self.task_id)
        # A skill that emits in a tight loop must not starve the writers that carry its events
        # to subscribers (their queues would overflow): yield to the loop every few events.
        # Not after each one: writers then send the events queued meanwhile in one frame,
        # one write for several events instead of one per event per subscriber.
        self._appended += 1
        if self._appended % YIELD_EVERY == 0:
            await asyncio.sleep(0)
