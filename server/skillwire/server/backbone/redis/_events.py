"""Task logs on Redis: appending events (and cancelling, which appends the last one), each
one Lua script, and reading them back. The webhook deliveries of a terminal event are created
in the same script (``_deliveries.creation_keys``/``creation_args``).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Sequence
from typing import Any

from skillwire.protocol import (
    SESSION_ID_PREFIX,
    Conflict,
    EncodedEvent,
    EventType,
    NotFound,
    Task,
    decode_event,
    format_time,
    lifecycle,
    validate,
)

from .._base import LogSlice
from . import _keys as keys
from . import _scripts as scripts
from ._batching import CommandBatcher
from ._deliveries import creation_args, creation_keys
from ._errors import translate, translated
from ._outputs import group_args
from ._sessions import RedisSessions

__all__ = ["RedisEvents"]


# The events after which a request is finished: only a batch holding one can end the task
# and create its webhook deliveries; APPEND gets the deliveries' arguments for those only.
_ENDING = frozenset(
    type_
    for type_, (_, to) in lifecycle.REQUEST_TRANSITIONS.items()
    if to in lifecycle.TERMINAL_REQUEST_STATUSES
)


class RedisEvents:
    """Each task's log: APPEND and CANCEL scripts, reads, and its newest event."""

    def __init__(
        self,
        client: Any,
        batcher: CommandBatcher,
        sessions: RedisSessions,
        *,
        max_events: int,
        max_outputs: int,
        max_output_bytes: int,
        retention: int,
        webhook_urls: Callable[[], Sequence[str]],
        wake_dispatchers: Callable[[], None],
    ) -> None:
        self._client = client
        self._batcher = batcher
        self._sessions = sessions
        self._max_events = max_events
        self._max_outputs = max_outputs
        self._max_output_bytes = max_output_bytes
        self._retention = retention
        self._webhook_urls = webhook_urls
        self._wake_dispatchers = wake_dispatchers

    async def append_batch(
        self, task_id: str, index: int, entries: list[tuple[EventType, Any]]
    ) -> tuple[int, list[EncodedEvent]]:
        script_keys, args = self._append_call(task_id, index, entries, with_events=True)
        async with translated():
            flat = await self._batcher.script(scripts.APPEND, script_keys, args)
        events = _events(flat[1:])
        if events and events[-1].terminal:
            self._wake_dispatchers()
        return int(flat[0]), events

    def append_batch_soon(
        self, task_id: str, index: int, entries: list[tuple[EventType, Any]]
    ) -> asyncio.Future[int] | None:
        """``append_batch`` queued for the next round trip with no coroutine or task of its
        own (a lone event's write-behind flush), and only how many were applied coming back,
        not the events; None until the script is loaded."""
        script_keys, args = self._append_call(task_id, index, entries, with_events=False)
        reply = self._batcher.script_soon(scripts.APPEND, script_keys, args)
        if reply is None:
            return None
        applied = _Applied(reply)
        reply.add_done_callback(functools.partial(self._settle, applied))
        return applied

    def _settle(self, applied: asyncio.Future[int], reply: asyncio.Future[Any]) -> None:
        if reply.cancelled():
            applied.cancel()
        elif (exc := reply.exception()) is not None:
            if not applied.done():
                applied.set_exception(translate(exc))
        elif not applied.done():
            count, finished = reply.result()
            if finished:
                self._wake_dispatchers()
            applied.set_result(int(count))

    def _append_call(
        self, task_id: str, index: int, entries: list[tuple[EventType, Any]], *, with_events: bool
    ) -> tuple[list[str], list[Any]]:
        """APPEND's keys and arguments."""
        groups: list[Any] = []
        ending = False
        for type_, data in entries:
            groups += (type_.value, index, *group_args(type_, data))
            ending = ending or type_ in _ENDING
        now = time.time()
        return (
            [keys.task(task_id), keys.events(task_id), keys.live(task_id), *creation_keys()],
            [
                task_id,
                keys.output_prefix(task_id),
                format_time(now),
                self._max_events,
                self._retention,
                self._retention,
                len(entries),
                self._max_outputs,
                self._max_output_bytes,
                b"1" if with_events else b"",
                *groups,
                *(creation_args(task_id, now, self._webhook_urls()) if ending else ()),
            ],
        )

    async def cancel(self, task_id: str) -> Task:
        now = time.time()
        async with translated():
            result = await self._batcher.script(
                scripts.CANCEL,
                [
                    keys.task(task_id),
                    keys.events(task_id),
                    keys.live(task_id),
                    keys.CONTROL,
                    *creation_keys(),
                ],
                [
                    task_id,
                    keys.output_prefix(task_id),
                    format_time(now),
                    self._max_events,
                    self._retention,
                    *creation_args(task_id, now, self._webhook_urls()),
                ],
            )
        outcome = result[0]
        if outcome == b"missing":
            raise NotFound(f"task {task_id} not found")
        if outcome == b"conflict":
            status = result[1].decode()
            raise Conflict(f"task {task_id} is already {status}", details={"status": status})
        self._wake_dispatchers()
        return validate(decode_event(result[3]).data, Task)

    async def read_events(self, task_id: str, after: int, limit: int) -> LogSlice | None:
        async with translated():
            found = await self._batcher.script(
                scripts.READ,
                [keys.task(task_id), keys.events(task_id)],
                [after, limit],
                repeatable=True,
            )
        if found is None:
            return None
        status, last_seq, first_seq, entries = found
        return LogSlice(
            events=[_entry(entry_id, fields) for entry_id, fields in entries],
            first_seq=int(first_seq),
            last_seq=int(last_seq),
            finished=status.decode() in lifecycle.TERMINAL_TASK_STATUSES,
        )

    async def newest(self, task_id: str) -> EncodedEvent | None:
        if task_id.startswith(SESSION_ID_PREFIX):  # the fan-out follows sessions too
            return await self._sessions.newest(task_id)
        entries = await self._client.xrevrange(keys.events(task_id), count=1)
        return _entry(*entries[0]) if entries else None


class _Applied(asyncio.Future[int]):
    """How many events APPEND applied. Cancelled by its caller (a stopped sub-request), it
    withdraws the script call at once: one not yet sent is then never sent (a done callback
    would come a turn too late, after the batcher's flusher)."""

    def __init__(self, reply: asyncio.Future[Any]) -> None:
        super().__init__()
        self._reply = reply

    def cancel(self, msg: Any | None = None) -> bool:
        self._reply.cancel()
        return super().cancel(msg)


def _events(flat: list[Any]) -> list[EncodedEvent]:
    """Events as a script returns them: seq, type, JSON, seq, type, JSON, ..."""
    out = []
    for i in range(0, len(flat), 3):
        out.append(EncodedEvent(int(flat[i]), flat[i + 1].decode(), flat[i + 2]))
    return out


def _entry(entry_id: bytes, fields: dict[bytes, bytes] | list[bytes]) -> EncodedEvent:
    if isinstance(fields, list):  # as a Lua script returns it: [name, value, ...]
        fields = dict(zip(fields[::2], fields[1::2], strict=True))
    return EncodedEvent(int(entry_id.split(b"-", 1)[0]), fields[b"t"].decode(), fields[b"e"])
