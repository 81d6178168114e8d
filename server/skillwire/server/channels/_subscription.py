"""Subscribe-then-replay: a task's (or a session's) events after some seq, in order, exactly
once. What is followed is a ``LogSource`` (``_sources``): a task's log by default.

1. Register a live listener first, so nothing appended from now on can be missed.
2. Read the log after ``after`` (in pages), pushing each event into the outbox.
3. Hand over to live delivery: events the listener buffered meanwhile are drained, skipping
   any seq already sent; from then on the listener pushes straight into the outbox.

A gap in live events (a seq more than one past the last sent, e.g. pub/sub lost a message)
sends the subscription back to the log for the missing part. When ``after`` is older than
the oldest event the log keeps, or a snapshot is asked for, a ``task.snapshot`` event
carrying the task as of seq N comes first, then the events after N.

A subscription whose ``after`` is at or past the task's terminal event (a client resuming
beyond the end) never sends that event; it still ends when the task does, queueing the
``ended`` frame its channel gives (the WebSocket's ``{"op": "ended"}``; SSE and NDJSON just
end the stream).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from skillwire.protocol import EncodedEvent

from .._params import MAX_SAFE_INTEGER
from ..backbone import Backbone
from ._outbox import Outbox
from ._sources import LogSource, TaskLog

__all__ = ["SlowConsumer", "Subscription"]

Frame = Callable[[EncodedEvent], Any]
EndedFrame = Callable[[str, int], Any]  # (task_id, the terminal event's seq) -> a frame
PAGE = 500


class SlowConsumer(Exception):
    """The reader fell further behind than its send queue allows."""


class Subscription:
    __slots__ = (
        "_backbone",
        "_buffer_limit",
        "_direct",
        "_ended_frame",
        "_failed",
        "_frame",
        "_outbox",
        "_pending",
        "_snapshot",
        "_source",
        "_wake",
        "finished",
        "last",
        "task_id",
    )

    def __init__(
        self,
        backbone: Backbone,
        task_id: str,
        after: int,
        *,
        outbox: Outbox[Any],
        frame: Frame,
        snapshot: bool = False,
        buffer_limit: int = 1024,
        ended: EndedFrame | None = None,
        source: LogSource | None = None,
    ) -> None:
        self._backbone = backbone
        self._source: LogSource = source if source is not None else TaskLog(backbone, task_id)
        self.task_id = task_id  # a session's id when ``source`` follows a session
        # No log reaches this seq; a larger ``after`` (a client may send any) means the same,
        # and stays within what a Redis stream id takes.
        self.last = min(after, MAX_SAFE_INTEGER)
        self._outbox = outbox
        self._frame = frame
        self._ended_frame = ended
        self._snapshot = snapshot
        self._buffer_limit = buffer_limit
        # Both made only when needed: most subscriptions go live with nothing buffered, and
        # an idle one is just this object and its task.
        self._pending: deque[EncodedEvent] | None = None
        self._wake: asyncio.Future[None] | None = None
        self._direct = False
        self.finished = False
        self._failed = False

    # -- live side (called synchronously by the backbone) --------------------------------
    def _on_live(self, event: EncodedEvent) -> None:
        if self.finished or self._failed:
            return
        if self._direct:
            if event.seq <= self.last and not event.terminal:
                return
            if event.seq == self.last + 1:
                if not self._outbox.push(self._frame(event)):
                    self._fail()
                    return
                self.last = event.seq
                if event.terminal:
                    self._finish()
                return
            # A gap (the run loop fills it from the log), or a terminal event at or before
            # ``after`` (the run loop ends the subscription): either way, not sent from here.
            self._direct = False
        if self._pending is None:
            self._pending = deque()
        if len(self._pending) >= self._buffer_limit:
            self._fail()
            return
        self._pending.append(event)
        self._signal()

    def _fail(self) -> None:
        self._failed = True
        self._outbox.overflowed = True
        self._signal()

    def _finish(self) -> None:
        self.finished = True
        self._signal()

    def _signal(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    # -- the run loop --------------------------------------------------------------------
    async def run(self) -> None:
        """Deliver until the terminal event is queued; raises SlowConsumer or NotFound."""
        undo = await self._source.listen(self._on_live)
        try:
            await self._catch_up(first=True)
            while not self.finished:
                if self._failed:
                    raise SlowConsumer(self.task_id)
                if self._pending:
                    await self._drain_pending()
                    continue
                self._direct = True  # no await since the check: nothing slips in between
                self._wake = asyncio.get_running_loop().create_future()
                try:
                    await self._wake
                finally:
                    self._wake = None
                if self._failed:
                    raise SlowConsumer(self.task_id)
        finally:
            undo()

    async def _emit(self, event: EncodedEvent) -> None:
        await self._outbox.put(self._frame(event))
        self.last = event.seq
        if event.terminal:
            self.finished = True

    async def _drain_pending(self) -> None:
        assert self._pending is not None
        while self._pending and not self.finished:
            event = self._pending.popleft()
            if event.seq <= self.last:
                if event.terminal:
                    await self._end_unsent(event.seq)
                continue
            if event.seq > self.last + 1:
                self._pending.appendleft(event)
                await self._catch_up(first=False)
                continue
            await self._emit(event)

    async def _catch_up(self, *, first: bool) -> None:
        while not self.finished:
            page = await self._source.read(self.last, PAGE)
            if page is None:
                raise self._source.missing()
            missed = self.last + 1 < page.first_seq
            if (first and self._snapshot) or missed:
                first = False
                if await self._send_snapshot():
                    return
                continue
            first = False
            for event in page.events:
                if event.seq > self.last:
                    await self._emit(event)
                    if self.finished:
                        return
            if not page.events or self.last >= page.last_seq:
                if page.finished and self.last >= page.last_seq:
                    await self._end_unsent(page.last_seq)
                return

    async def _end_unsent(self, last_seq: int) -> None:
        """The task finished at ``last_seq``, at or before ``after``: end without its event."""
        if self._ended_frame is not None:
            await self._outbox.put(self._ended_frame(self.task_id, last_seq))
        self.finished = True

    async def _send_snapshot(self) -> bool:
        """Queue a snapshot; True when the log had ended (nothing follows)."""
        event, ended = await self._source.snapshot()
        await self._outbox.put(self._frame(event))
        self.last = event.seq
        if ended:
            self.finished = True
            return True
        return False
