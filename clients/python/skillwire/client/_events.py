"""Helpers over events: which end a stream, the Task they carry, and the path they live at."""

from __future__ import annotations

from urllib.parse import quote

import msgspec

from skillwire.protocol import Event, EventType, Task, decode_event, lifecycle, to_builtins

__all__ = [
    "TERMINAL_EVENT_TYPES",
    "decode_known_event",
    "event_task",
    "events_path",
    "is_terminal",
    "is_unknown_event",
    "snapshot_event",
    "task_path",
    "terminal_event",
]

TERMINAL_EVENT_TYPES = frozenset(lifecycle.TASK_TERMINAL_EVENTS.values())
_TASK_EVENT_TYPES = TERMINAL_EVENT_TYPES | {EventType.TASK_SNAPSHOT}
_KNOWN_EVENT_TYPES = frozenset(EventType)
_any_decoder = msgspec.json.Decoder()


def task_path(task_id: str) -> str:
    return f"/api/v1/tasks/{quote(task_id, safe='')}"


def events_path(task_id: str) -> str:
    return task_path(task_id) + "/events"


def is_unknown_event(raw: object) -> bool:
    """True for a decoded JSON event whose ``type`` this client does not know (a newer
    server's): API.md asks clients to skip those, as the contract grows."""
    if not isinstance(raw, dict):
        return False
    kind = raw.get("type")
    return isinstance(kind, str) and kind not in _KNOWN_EVENT_TYPES


def decode_known_event(data: bytes | str) -> Event | None:
    """One event from its JSON; None for an event type this client does not know.

    Anything else that does not decode raises msgspec's error, as ``decode_event`` does.
    """
    try:
        return decode_event(data)
    except msgspec.ValidationError:
        if is_unknown_event(_any_decoder.decode(data)):
            return None
        raise


def _snapshot_status(event: Event) -> str | None:
    data = event.data
    status = data.get("status") if isinstance(data, dict) else getattr(data, "status", None)
    return status if isinstance(status, str) else None


def is_terminal(event: Event) -> bool:
    """True for the event that ends a task's stream.

    That is a ``task.completed|partial|failed|cancelled`` event, or a ``task.snapshot`` of a
    finished task (a subscriber that asks for a snapshot of a finished task gets only that).
    """
    if event.type in TERMINAL_EVENT_TYPES:
        return True
    if event.type == EventType.TASK_SNAPSHOT:
        status = _snapshot_status(event)
        return status in lifecycle.TERMINAL_TASK_STATUSES
    return False


def event_task(event: Event) -> Task:
    """The Task a ``task.snapshot`` or terminal event carries; ValueError for other events."""
    if event.type not in _TASK_EVENT_TYPES:
        raise ValueError(f"a {event.type} event carries no task")
    if isinstance(event.data, Task):
        return event.data
    return msgspec.convert(event.data, Task)


def _task_event(task: Task, type_: EventType, time: str) -> Event:
    return Event(
        task_id=task.task_id, seq=task.last_seq, type=type_, time=time, data=to_builtins(task)
    )


def terminal_event(task: Task) -> Event:
    """The terminal event of a finished task, rebuilt from the Task (as polling sees it)."""
    type_ = lifecycle.TASK_TERMINAL_EVENTS[task.status]
    return _task_event(task, type_, task.finished_at or task.updated_at)


def snapshot_event(task: Task) -> Event:
    """A ``task.snapshot`` of ``task`` as of its ``last_seq`` (as polling sees it)."""
    return _task_event(task, EventType.TASK_SNAPSHOT, task.updated_at)
