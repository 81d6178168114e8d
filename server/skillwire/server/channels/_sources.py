"""What a ``Subscription`` follows: a task's log or a session's log.

Both are read the same way (subscribe, replay after a seq, then live events; a snapshot when
asked for or when the reader is behind what the log keeps), so every channel gives a session
stream the same guarantees as a task stream.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from skillwire.protocol import (
    SESSION_SNAPSHOT_TASKS,
    EncodedEvent,
    EncodedSessionEvent,
    Event,
    EventType,
    NotFound,
    SessionEvent,
    SessionEventType,
    SessionStatus,
    format_time,
    lifecycle,
)

from ..backbone import Backbone, EventListener, LogSlice

__all__ = ["LogSource", "SessionLog", "TaskLog"]


class LogSource(Protocol):
    async def listen(self, listener: EventListener) -> Callable[[], None]: ...

    async def read(self, after: int, limit: int) -> LogSlice | None: ...

    async def snapshot(self) -> tuple[EncodedEvent, bool]:
        """The snapshot event (its seq the log's last) and whether the log has ended."""
        ...

    def missing(self) -> NotFound: ...


class TaskLog:
    __slots__ = ("_backbone", "_task_id")

    def __init__(self, backbone: Backbone, task_id: str) -> None:
        self._backbone = backbone
        self._task_id = task_id

    async def listen(self, listener: EventListener) -> Callable[[], None]:
        return await self._backbone.listen(self._task_id, listener)

    async def read(self, after: int, limit: int) -> LogSlice | None:
        return await self._backbone.read_events(self._task_id, after, limit)

    async def snapshot(self) -> tuple[EncodedEvent, bool]:
        stored = await self._backbone.get_task(self._task_id)
        if stored is None:
            raise self.missing()
        task = stored.task
        event = Event(
            task_id=self._task_id,
            seq=task.last_seq,
            type=EventType.TASK_SNAPSHOT,
            time=format_time(time.time()),
            data=task,
        )
        return EncodedEvent.of(event), task.status in lifecycle.TERMINAL_TASK_STATUSES

    def missing(self) -> NotFound:
        return NotFound(f"task {self._task_id} not found", details={"task_id": self._task_id})


class SessionLog:
    __slots__ = ("_backbone", "_session_id")

    def __init__(self, backbone: Backbone, session_id: str) -> None:
        self._backbone = backbone
        self._session_id = session_id

    async def listen(self, listener: EventListener) -> Callable[[], None]:
        return await self._backbone.listen_session(self._session_id, listener)

    async def read(self, after: int, limit: int) -> LogSlice | None:
        return await self._backbone.read_session_events(self._session_id, after, limit)

    async def snapshot(self) -> tuple[EncodedEvent, bool]:
        snapshot = await self._backbone.session_snapshot(self._session_id, SESSION_SNAPSHOT_TASKS)
        if snapshot is None:
            raise self.missing()
        session = snapshot.session
        event = SessionEvent(
            session_id=self._session_id,
            seq=session.last_seq,
            type=SessionEventType.SESSION_SNAPSHOT,
            time=format_time(time.time()),
            data=snapshot,
        )
        return EncodedSessionEvent.of_session(event), session.status is SessionStatus.CLOSED

    def missing(self) -> NotFound:
        return NotFound(
            f"session {self._session_id} not found", details={"session_id": self._session_id}
        )
