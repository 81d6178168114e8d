"""Following a task to its end: transport fallback, reconnects, exactly-once resume.

The transports (``_ws``, ``_sse``, ``_ndjson``, ``_poll``) each open one connection and
yield what it delivers. ``Follower`` strings connections together:

* it remembers the last ``seq`` it yielded and opens every new connection after it
  (WS ``subscribe`` with ``after``, SSE ``Last-Event-ID``, NDJSON ``?after=``), and drops
  any event at or below it, so each event is yielded once, in order;
* a temporary failure (a dropped connection, a 1012/1013 close, silence past three
  heartbeat intervals, a 503) reconnects on the same transport after a jittered backoff,
  up to ``max_reconnects`` failures in a row (any event yielded resets the count);
* ``TransportUnavailable`` moves on to the next transport of the order (``auto``:
  WebSocket, SSE, NDJSON, polling); other errors (404, 401, …) are raised as they are;
* a stream that ends without the terminal event counts as a dropped connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Sequence

from skillwire.protocol import Event, EventType, RateLimited, SkillwireError, Task, lifecycle

from ._errors import TransportError, TransportUnavailable
from ._events import is_terminal, task_path
from ._http import HttpTransport
from ._ndjson import ndjson_events
from ._poll import poll_events
from ._settings import StreamTransport
from ._sse import sse_events
from ._ws import SubscriptionEnded, ws_events

__all__ = ["Follower"]

log = logging.getLogger("skillwire.client")


class Follower:
    """Follows tasks over ``transports``, in order of preference."""

    def __init__(self, http: HttpTransport, transports: Sequence[StreamTransport]) -> None:
        if not transports:
            raise ValueError("at least one transport is needed")
        self.http = http
        self.settings = http.settings
        self.transports = tuple(transports)

    def _open(
        self, name: StreamTransport, task_id: str, after: int, snapshot: bool
    ) -> AsyncGenerator[Event, None]:
        if name == "ws":
            return ws_events(self.settings, task_id, after, snapshot=snapshot)
        if name == "sse":
            return sse_events(self.http, task_id, after, snapshot=snapshot)
        if name == "ndjson":
            return ndjson_events(self.http, task_id, after, snapshot=snapshot)
        return poll_events(self.http, task_id, after, snapshot=snapshot)

    async def _ended_by(self, task_id: str, after: int) -> bool:
        """True when the task is finished and its last event is at or before ``after``.

        Such a subscription would deliver nothing (and a WebSocket would wait forever), so
        one GET settles it before any stream is opened.
        """
        task = await self.http.get(Task, task_path(task_id))
        return task.status in lifecycle.TERMINAL_TASK_STATUSES and task.last_seq <= after

    async def _ended_quietly(self, task_id: str, after: int) -> bool:
        """After an HTTP stream ended without the terminal event: did the task end at or
        before ``after`` (SSE and NDJSON then simply end)? False when it cannot be told."""
        try:
            return await self._ended_by(task_id, after)
        except SkillwireError:
            return False  # reconnect as for any dropped stream

    def _delay(self, exc: SkillwireError, failures: int) -> float:
        retry_after = exc.details.get("retry_after") if isinstance(exc, RateLimited) else None
        if isinstance(retry_after, int | float) and retry_after > 0:
            return float(retry_after)
        return self.settings.backoff.delay(failures - 1)

    async def follow(
        self,
        task_id: str,
        after: int = 0,
        *,
        snapshot: bool = False,
        first: AsyncGenerator[Event, None] | None = None,
    ) -> AsyncGenerator[Event, None]:
        """Yield the task's events after ``after`` until the terminal one.

        ``first`` is a stream already open on the first transport (``stream()`` starts the
        call on a WebSocket and follows on the same connection).
        """
        if after < 0:
            raise ValueError("after must be >= 0")
        last = after
        want_snapshot = snapshot
        index = 0
        failures = 0
        if first is None and after > 0 and not snapshot and await self._ended_by(task_id, after):
            return
        source = first
        while True:
            name = self.transports[index]
            if source is None:
                source = self._open(name, task_id, last, want_snapshot)
            try:
                async with contextlib.aclosing(source):
                    async for event in source:
                        if event.type == EventType.TASK_SNAPSHOT:
                            if not want_snapshot and event.seq <= last:
                                continue
                            want_snapshot = False
                        elif event.seq <= last:
                            continue  # a replay of what was yielded already
                        last = event.seq
                        failures = 0
                        yield event
                        if is_terminal(event):
                            return
                if name != "ws" and await self._ended_quietly(task_id, last):
                    return  # resumed past the end: the stream ended without the terminal event
                raise TransportError(
                    "the stream ended before the task's terminal event",
                    details={"transport": name},
                )
            except SubscriptionEnded:
                return  # the WebSocket's ``ended``: the task finished at or before ``last``
            except TransportUnavailable as exc:
                if index + 1 >= len(self.transports):
                    raise
                index += 1
                log.info(
                    "skillwire: %s unavailable (%s); falling back to %s",
                    name,
                    exc.message,
                    self.transports[index],
                )
            except SkillwireError as exc:
                if not exc.temporary:
                    raise
                failures += 1
                if failures > self.settings.max_reconnects:
                    raise
                delay = self._delay(exc, failures)
                log.info(
                    "skillwire: %s stream of %s dropped (%s); resuming after seq %d in %.2fs",
                    name,
                    task_id,
                    exc.message,
                    last,
                    delay,
                )
                await asyncio.sleep(delay)
            source = None
