"""Sessions in the memory backbone: a second kind of log beside the task log.

A session's log holds ``session.task`` when a task joins, then every event of its tasks as
``task.event`` (in the order they were appended, with the session's own ``seq``), and
``session.closed`` last. The memory backbone writes a task's events to its session's log in
the same step as to the task's own log, before any listener of either hears of them, so a
session reader never sees a task event the task log lacks, or the reverse.

The log is capped like a task's (``max_events``, ``max_log_bytes``); a reader behind what is
kept gets a ``session.snapshot`` (``channels._subscription``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from skillwire.protocol import (
    Conflict,
    EncodedEvent,
    EncodedSessionEvent,
    NotFound,
    Session,
    SessionEvent,
    SessionEventType,
    SessionStatus,
    SessionTask,
    Task,
    format_time,
    parse_time,
)

from ._base import EventListener, LogSlice, StoredSession
from ._trim import trim_log

__all__ = ["MemorySessions"]


@dataclass(slots=True)
class _SessionRecord:
    session: Session
    owner: str
    log: list[EncodedSessionEvent] = field(default_factory=list)
    log_bytes: int = 0
    first_seq: int = 1
    listeners: list[EventListener] = field(default_factory=list)


def _lean(event: EncodedSessionEvent) -> EncodedSessionEvent:
    return EncodedSessionEvent(event.seq, event.type, event.json)


class MemorySessions:
    """Every session of one memory backbone; each method runs without awaiting (atomic)."""

    def __init__(self, *, max_events: int, max_log_bytes: int, retention: float) -> None:
        self._max_events = max_events
        self._max_log_bytes = max_log_bytes
        self._retention = retention
        self._records: dict[str, _SessionRecord] = {}

    # -- records -------------------------------------------------------------------------
    def create(self, session: Session, owner: str) -> None:
        self._records[session.session_id] = _SessionRecord(session=session, owner=owner)

    def _live(self, session_id: str) -> _SessionRecord | None:
        """The session's record, unless its last activity is past the retention window: then
        it is forgotten at once (its id answers 410 from then on, not when the sweep next runs),
        as the memory backbone does for tasks."""
        record = self._records.get(session_id)
        if record is not None and parse_time(record.session.updated_at) < (
            time.time() - self._retention
        ):
            del self._records[session_id]
            return None
        return record

    def get(self, session_id: str) -> StoredSession | None:
        record = self._live(session_id)
        if record is None:
            return None
        return StoredSession(_view(record.session), record.owner)

    def page(self, owner: str | None, limit: int, offset: int) -> tuple[list[Session], int]:
        matches = [
            r.session for r in reversed(self._records.values()) if owner is None or r.owner == owner
        ]
        return [_view(s) for s in matches[offset : offset + limit]], len(matches)

    def check_open(self, session_id: str) -> None:
        """Raise unless a task may join: NotFound, or Conflict once the session is closed."""
        record = self._live(session_id)
        if record is None:
            raise NotFound(f"session {session_id} not found", details={"session_id": session_id})
        if record.session.status is SessionStatus.CLOSED:
            raise Conflict(
                f"session {session_id} is closed",
                details={"session_id": session_id, "status": "closed"},
            )

    def running_task_ids(self, session_id: str) -> list[str]:
        record = self._records.get(session_id)
        return list(record.session.task_ids) if record is not None else []

    def mark_closed(self, session_id: str) -> None:
        """No task joins from now on (the caller then cancels its tasks, then ``closed``)."""
        self.check_open(session_id)
        self._records[session_id].session.status = SessionStatus.CLOSED

    def append_closed(self, session_id: str, now: float) -> Session:
        record = self._records[session_id]
        seq = self._next(record, now)
        view = _view(record.session)
        closed = SessionEventType.SESSION_CLOSED
        event = SessionEvent(session_id, seq, closed, view.updated_at, view)
        self._publish(record, [EncodedSessionEvent.of_session(event)])
        return view

    # -- the log -------------------------------------------------------------------------
    def task_joined(self, task: Task, first: EncodedEvent, now: float) -> None:
        """``session.task`` for ``task``, then its first event (the session must be open)."""
        assert task.session_id is not None
        record = self._records[task.session_id]
        record.session.task_ids.append(task.task_id)
        seq = self._next(record, now)
        joined = SessionEvent(
            task.session_id,
            seq,
            SessionEventType.SESSION_TASK,
            record.session.updated_at,
            SessionTask(task.task_id, task.app, task.skill, task.parent_task_id),
        )
        events = [EncodedSessionEvent.of_session(joined)]
        events.append(self._wrap(record, first, now))
        self._publish(record, events)

    def task_events(self, session_id: str, events: list[EncodedEvent], now: float) -> None:
        record = self._records.get(session_id)
        if record is None or not events:
            return  # the session left the retention window before its task
        self._publish(record, [self._wrap(record, e, now) for e in events])

    def _next(self, record: _SessionRecord, now: float) -> int:
        record.session.last_seq += 1
        record.session.updated_at = format_time(now)
        return record.session.last_seq

    def _wrap(self, record: _SessionRecord, event: EncodedEvent, now: float) -> EncodedSessionEvent:
        seq = self._next(record, now)
        return EncodedSessionEvent.wrapping(
            record.session.session_id, seq, record.session.updated_at, event
        )

    def _publish(self, record: _SessionRecord, events: list[EncodedSessionEvent]) -> None:
        for event in events:
            record.log.append(_lean(event))
            record.log_bytes += len(event.json)
        self._trim(record)
        for event in events:
            for listener in list(record.listeners):
                listener(event)

    def _trim(self, record: _SessionRecord) -> None:
        trim_log(record, self._max_events, self._max_log_bytes)

    def read(self, session_id: str, after: int, limit: int) -> LogSlice | None:
        record = self._live(session_id)
        if record is None:
            return None
        start = max(after + 1 - record.first_seq, 0)
        return LogSlice(
            events=[_lean(e) for e in record.log[start : start + limit]],
            first_seq=record.first_seq,
            last_seq=record.session.last_seq,
            finished=record.session.status is SessionStatus.CLOSED
            and bool(record.log)
            and record.log[-1].terminal,
        )

    def listen(self, session_id: str, listener: EventListener) -> Callable[[], None]:
        record = self._live(session_id)
        if record is None:
            return lambda: None
        record.listeners.append(listener)

        def undo() -> None:
            with contextlib.suppress(ValueError):
                record.listeners.remove(listener)

        return undo

    def listener_count(self) -> int:
        return sum(len(r.listeners) for r in self._records.values())

    # -- retention -----------------------------------------------------------------------
    def sweep(self, now: float) -> None:
        """Forget sessions whose last activity is past the retention window."""
        cutoff = now - self._retention
        for session_id in [
            s for s, r in self._records.items() if parse_time(r.session.updated_at) < cutoff
        ]:
            del self._records[session_id]


def _view(session: Session) -> Session:
    """A copy a caller may keep: the record's own goes on changing."""
    return Session(
        session_id=session.session_id,
        title=session.title,
        metadata=session.metadata,
        status=session.status,
        created_at=session.created_at,
        updated_at=session.updated_at,
        last_seq=session.last_seq,
        task_ids=list(session.task_ids),
    )
