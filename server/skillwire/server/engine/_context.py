"""What a running skill sees of its sub-request: ids, progress, outputs and streamed outputs."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

from skillwire.protocol import BackboneUnavailable, EventType, format_time, to_builtins

from ._calls import ChildCall, ChildCalls

if TYPE_CHECKING:
    from ..backbone import Backbone

__all__ = ["Context", "Discarded", "StreamedOutput"]

YIELD_EVERY = 16  # well under any send queue (default 1024): a healthy reader never overflows
WRITE_BEHIND_LIMIT = 256  # events a skill may have on their way before an emit waits
# Characters one merged delta may reach: past it appends queue as a new delta, so that the
# events on their way stay bounded (WRITE_BEHIND_LIMIT of them) when the store falls behind.
MERGE_LIMIT = 16 * 1024


class Discarded(Exception):
    """The task finished (cancelled) under a running skill: stop, nothing more is kept."""


class _WriteBehind:
    """A sub-request's events on their way to a shared backbone, several per round trip.

    An emit queues its event and returns; one flush at a time stores everything queued
    meanwhile in one step, in order. A flush is the backbone's future when it can queue the
    append itself (Redis: into the process's next pipelined round trip), else a task. A skill
    that emits faster than the store keeps up waits once ``WRITE_BEHIND_LIMIT`` events are
    queued. What the store refused or failed surfaces at the skill's next emit, or when the
    worker flushes before it ends the sub-request, so an ending event never overtakes an
    output.
    """

    __slots__ = (
        "_backbone",
        "_error",
        "_flushing",
        "_index",
        "_merged",
        "_pieces",
        "_queued",
        "_refused",
        "_sent",
        "_task_id",
    )

    def __init__(self, backbone: Backbone, task_id: str, index: int) -> None:
        self._backbone = backbone
        self._task_id = task_id
        self._index = index
        self._queued: list[tuple[EventType, Any]] = []
        # The texts of the appends merged into the newest queued entry (a delta), and their
        # length: joined once when the batch leaves, not copied at every append.
        self._pieces: list[str] | None = None
        self._merged = 0
        self._flushing: asyncio.Future[Any] | None = None
        self._sent = 0  # events in the flush in flight, when it is the backbone's future
        self._error: BaseException | None = None
        self._refused = False

    async def add(self, type_: EventType, data: Any) -> None:
        self._check()
        if type_ is EventType.REQUEST_DELTA:
            text: str = data["append"]
            pieces = self._pieces
            if pieces is not None:
                last = self._queued[-1][1]
                if (
                    last["output"] == data["output"]
                    and last["field"] == data["field"]
                    and self._merged + len(text) <= MERGE_LIMIT
                ):
                    # Consecutive appends to one output, not yet sent: one event (a flush of
                    # 50 tokens is one delta, one PUBLISH). Only the newest queued entry is
                    # merged, so deltas are never reordered.
                    pieces.append(text)
                    self._merged += len(text)
                    return
            self._seal()
            self._pieces, self._merged = [text], len(text)
        else:
            self._seal()
        self._queued.append((type_, data))
        if self._flushing is None:
            self._flush_next()
        elif len(self._queued) >= WRITE_BEHIND_LIMIT:
            await self._wait_for_room()

    async def _wait_for_room(self) -> None:
        """Until the flush in flight is stored. The backbone's future then has sent what is
        queued already, and the skill fills the next batch while that one travels; a task
        flushes until nothing is queued."""
        flushing = self._flushing
        if flushing is not None:
            await asyncio.wait({flushing})
            if self._flushing is flushing:  # cancelled before it ever ran: no finally of its own
                self._flushing = None
        self._check()

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
        self._queued, self._pieces = [], None
        self._refused = True
        if self._flushing is not None:
            self._flushing.cancel()
            self._flushing = None

    def _check(self) -> None:
        if self._refused:  # first: an abandoned flush also leaves an error behind
            raise Discarded(self._task_id)
        if self._error is not None:
            raise self._error

    def _seal(self) -> None:
        """The newest queued delta takes no more appends: its merged texts joined, once."""
        pieces = self._pieces
        if pieces is not None:
            self._pieces = None
            if len(pieces) > 1:
                type_, last = self._queued[-1]
                self._queued[-1] = (type_, {**last, "append": "".join(pieces)})

    def _take(self) -> list[tuple[EventType, Any]]:
        """Everything queued, merged appends joined."""
        self._seal()
        batch, self._queued = self._queued, []
        return batch

    def _flush_next(self) -> None:
        # No task per lone event when the backbone takes the append as it is. What is queued
        # leaves now, so the newest delta takes no more appends.
        merging = self._pieces is not None
        self._seal()
        try:
            stored = self._backbone.append_batch_soon(self._task_id, self._index, self._queued)
        except Exception as exc:  # as a flush task would: the batch is lost, the skill told
            self._queued = []
            self._error = exc
            return
        if stored is None:
            if merging:  # the batch waits for a task: its newest delta merges until it leaves
                self._pieces = [self._queued[-1][1]["append"]]
            self._flushing = asyncio.create_task(self._flush())
            return
        self._sent, self._queued = len(self._queued), []
        self._flushing = stored
        stored.add_done_callback(self._stored)

    def _stored(self, stored: asyncio.Future[int]) -> None:
        error = None if stored.cancelled() else stored.exception()  # retrieved in any case
        if self._flushing is not stored:  # abandoned meanwhile
            return
        self._flushing = None
        if stored.cancelled():
            self._error = BackboneUnavailable("the process stopped before the events were stored")
        elif error is not None:
            self._error = error
        elif stored.result() < self._sent:
            self._refused = True  # the task finished (cancelled): drop the rest
        elif self._queued:
            self._flush_next()

    async def _flush(self) -> None:
        try:
            while self._queued and not self._refused:
                batch = self._take()
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


class StreamedOutput:
    """An output that grows, opened by ``async with ctx.stream(item) as out``.

    Entering the block emits ``item`` (a ``request.output``); each ``await out.append(text)``
    appends ``text`` to its string field ``field`` (a ``request.delta``). Leaving the block
    ends nothing: the output simply stops growing. ``index`` is the output's number ``n``.
    """

    __slots__ = ("_ctx", "_item", "field", "index")

    def __init__(self, ctx: Context, item: dict[str, Any], field: str) -> None:
        self._ctx = ctx
        self._item = item
        self.field = field
        self.index = -1  # set when the block is entered and the output emitted

    async def append(self, text: str) -> None:
        """Append ``text`` to the output's field (nothing is sent for an empty string)."""
        index = self.index
        if index < 0:
            raise RuntimeError("append inside `async with ctx.stream(...) as out:` only")
        ctx = self._ctx
        if type(text) is str and index < ctx._outputs:
            # A token's path: the field was checked when the output was made, the number when
            # it was emitted (and stays valid until a rerun), so only the text is.
            if text:
                await ctx._append(
                    EventType.REQUEST_DELTA, {"output": index, "field": self.field, "append": text}
                )
            return
        await ctx.append(index, self.field, text)  # the checks, and the error they raise

    async def __aenter__(self) -> StreamedOutput:
        if self.index >= 0:
            raise RuntimeError("a streamed output is opened once")
        self.index = await self._ctx.output(self._item)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None


class Context:
    """Passed to a skill that asks for it (a parameter annotated ``Context``)."""

    __slots__ = (
        "_appended",
        "_backbone",
        "_behind",
        "_calls",
        "_outputs",
        "_result",
        "app",
        "index",
        "principal",
        "skill",
        "task_id",
    )

    def __init__(
        self,
        backbone: Backbone,
        task_id: str,
        index: int,
        app: str,
        skill: str,
        principal: str,
        *,
        calls: ChildCalls | None = None,
    ) -> None:
        self._backbone = backbone
        self._calls = calls
        self._appended = 0
        self._outputs = 0  # outputs emitted by this run: the next one's number
        self._result: dict[str, Any] | None = None  # None until set: nothing kept while idle
        # Made at the first emit: a skill that waits before emitting holds none.
        self._behind: _WriteBehind | None = None
        self.task_id = task_id
        self.index = index
        self.app = app
        self.skill = skill
        self.principal = principal

    async def progress(self, fraction: float, message: str = "") -> None:
        """Report progress (0.0 to 1.0) as a ``request.progress`` event."""
        fraction = min(max(float(fraction), 0.0), 1.0)
        await self._append(EventType.REQUEST_PROGRESS, {"progress": fraction, "message": message})

    async def output(self, item: Any) -> int:
        """Emit one output item now (what returning or yielding a value does too).

        Returns its number ``n``: this request's outputs count from 0 in the order emitted
        (``ctx.append(n, ...)`` grows it later)."""
        await self._append(EventType.REQUEST_OUTPUT, to_builtins(item))
        n = self._outputs
        self._outputs += 1
        return n

    def stream(self, item: Any, field: str = "text") -> StreamedOutput:
        """An output that grows: ``async with ctx.stream({"type": "text", "text": ""}) as out:``
        emits ``item`` on entering, and ``await out.append(token)`` grows its ``field``.

        ``item`` must be an object whose ``field`` is a string (raises ``TypeError``)."""
        built = to_builtins(item)
        if not isinstance(built, dict) or not isinstance(built.get(field), str):
            raise TypeError(f"ctx.stream needs an object whose field {field!r} is a string")
        return StreamedOutput(self, built, field)

    async def append(self, output: int, field: str, text: str) -> None:
        """Append ``text`` to string field ``field`` of output ``output`` (a number that
        ``ctx.output`` returned), as one ``request.delta``. An empty ``text`` sends nothing.

        Consecutive appends to one output may reach subscribers merged into one delta."""
        if not isinstance(text, str) or not isinstance(field, str):
            raise TypeError("ctx.append(output, field, text) takes a str field and a str text")
        if not 0 <= output < self._outputs:
            raise ValueError(f"output {output} was not emitted ({self._outputs} so far)")
        if text:
            await self._append(
                EventType.REQUEST_DELTA, {"output": output, "field": field, "append": text}
            )

    def call(
        self,
        app: str,
        skill: str,
        requests: list[Any],
        *,
        metadata: dict[str, Any] | None = None,
    ) -> ChildCall:
        """Call another skill as a child task (same principal and session, ``parent_task_id``
        this task): ``task = await ctx.call("demo", "echo", [{"text": "hi"}])`` waits for it
        and returns its final Task (whatever its status: a child's failure is the caller's
        to handle); ``async for event in ctx.call(...)`` iterates its events instead.

        Raises ``SkillError`` when the call may not be made: code ``FORBIDDEN`` (the
        principal's permissions or scopes), ``NOT_FOUND``, ``VALIDATION_ERROR`` (bad
        requests, or calls nested deeper than ``max_call_depth``), ``CONFLICT`` (the session
        was closed). Cancelling this task cancels the child."""
        if self._calls is None:
            raise RuntimeError("ctx.call needs a worker pool that runs child calls")
        return ChildCall(self._calls, self, app, skill, requests, metadata)

    async def record_call(self, data: dict[str, Any]) -> None:
        """The ``request.call`` event naming a child task (``ctx.call`` writes it)."""
        await self._append(EventType.REQUEST_CALL, data)

    def set_result(self, data: Any) -> None:
        """What this request's ``request.completed`` carries (kept as ``requests[i].result``),
        e.g. ``{"finish_reason": "stop", "usage": {...}}``; the latest call wins."""
        built = to_builtins(data)
        if not isinstance(built, dict):
            raise TypeError("ctx.set_result takes an object (a dict or a Struct)")
        self._result = built

    def rerun(self) -> None:
        """The request starts again (``request.started`` once more, its worker lost): its
        outputs count from 0 again and the result set so far is forgotten."""
        self._outputs = 0
        self._result = None

    @property
    def result(self) -> dict[str, Any]:
        """The data set by ``set_result`` (``{}`` when none)."""
        return self._result if self._result is not None else {}

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
        if self._backbone.batches_appends:
            if self._behind is None:
                self._behind = _WriteBehind(self._backbone, self.task_id, self.index)
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
        self._outputs = 0  # the new run numbers its outputs from 0, as request.started says
        self._result = None
