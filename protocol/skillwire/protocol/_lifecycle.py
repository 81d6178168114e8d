"""The task and sub-request lifecycles: every rule that changes a task lives in this file.

A task changes only by appending events to its log. ``append`` takes a task as it is, the
event a worker (or the engine) wants to append, and returns the events actually appended,
after mutating the task to match them. It adds the events the rules imply: ``task.started``
before the first ``request.started``, and the terminal task event after the last request
ends. Backbones call it under whatever makes one task's appends atomic (the event loop for
the memory backbone; a Lua script mirrors it on Redis).

Streamed outputs: ``request.delta`` appends a string to a string field of an output the
request emitted (output ``n`` counts its outputs from 0 since its latest ``request.started``).
The task holds the accumulated value; a delta to an output the task no longer holds (see
``_bounds``) is stored and delivered but not applied.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ._bounds import OutputBounds
from ._codec import encode
from ._errors import Conflict, IllegalTransition
from ._models import (
    Delta,
    ErrorDetail,
    Event,
    EventType,
    RequestState,
    RequestStatus,
    Task,
    TaskLinks,
    TaskStatus,
)

__all__ = [
    "REQUEST_TRANSITIONS",
    "TASK_TERMINAL_EVENTS",
    "TERMINAL_REQUEST_STATUSES",
    "TERMINAL_TASK_STATUSES",
    "UNLINKED",
    "append",
    "cancel",
    "new_task",
    "task_links",
    "task_view",
]

TERMINAL_TASK_STATUSES = frozenset(
    {TaskStatus.COMPLETED, TaskStatus.PARTIAL, TaskStatus.FAILED, TaskStatus.CANCELLED}
)
TERMINAL_REQUEST_STATUSES = frozenset(
    {RequestStatus.COMPLETED, RequestStatus.FAILED, RequestStatus.CANCELLED}
)

# event type -> (request statuses it may follow, the status it leaves the request in).
# A request.started on a running request is a re-delivery (at-least-once work): it runs again.
REQUEST_TRANSITIONS: dict[EventType, tuple[frozenset[RequestStatus], RequestStatus]] = {
    EventType.REQUEST_QUEUED: (
        frozenset({RequestStatus.QUEUED, RequestStatus.RUNNING}),
        RequestStatus.QUEUED,
    ),
    EventType.REQUEST_STARTED: (
        frozenset({RequestStatus.QUEUED, RequestStatus.RUNNING}),
        RequestStatus.RUNNING,
    ),
    EventType.REQUEST_PROGRESS: (frozenset({RequestStatus.RUNNING}), RequestStatus.RUNNING),
    EventType.REQUEST_OUTPUT: (frozenset({RequestStatus.RUNNING}), RequestStatus.RUNNING),
    EventType.REQUEST_DELTA: (frozenset({RequestStatus.RUNNING}), RequestStatus.RUNNING),
    EventType.REQUEST_CALL: (frozenset({RequestStatus.RUNNING}), RequestStatus.RUNNING),
    EventType.REQUEST_COMPLETED: (frozenset({RequestStatus.RUNNING}), RequestStatus.COMPLETED),
    EventType.REQUEST_FAILED: (
        frozenset({RequestStatus.QUEUED, RequestStatus.RUNNING}),
        RequestStatus.FAILED,
    ),
}

TASK_TERMINAL_EVENTS: dict[TaskStatus, EventType] = {
    TaskStatus.COMPLETED: EventType.TASK_COMPLETED,
    TaskStatus.PARTIAL: EventType.TASK_PARTIAL,
    TaskStatus.FAILED: EventType.TASK_FAILED,
    TaskStatus.CANCELLED: EventType.TASK_CANCELLED,
}


# What a Task a backbone keeps in memory holds instead of its links (one shared value, not two
# strings per task): its links follow from its id, and ``task_view`` puts them back.
UNLINKED = TaskLinks(self="", events="")


def task_links(task_id: str) -> TaskLinks:
    """A task's links, relative to the app (``_links`` roots them where it is mounted)."""
    return TaskLinks(self=f"/api/v1/tasks/{task_id}", events=f"/api/v1/tasks/{task_id}/events")


def new_task(
    task_id: str, app: str, skill: str, n_requests: int, metadata: dict[str, Any], now: str
) -> tuple[Task, Event]:
    """A queued task with ``n_requests`` queued requests, and its first event (seq 1)."""
    task = Task(
        task_id=task_id,
        app=app,
        skill=skill,
        status=TaskStatus.QUEUED,
        created_at=now,
        updated_at=now,
        finished_at=None,
        requests=[RequestState(index=i) for i in range(n_requests)],
        previews=[],
        error=None,
        last_seq=1,
        metadata=metadata,
        links=task_links(task_id),
    )
    return task, Event(task_id=task_id, seq=1, type=EventType.TASK_QUEUED, time=now, data={})


def task_view(task: Task) -> Task:
    """The task as clients see it: ``previews`` filled from the requests' outputs in order,
    and its links when it holds ``UNLINKED``.

    Each output dict is copied (shallowly), once, shared by ``output`` and ``previews``: deltas
    grow the task's own dicts in place, never a view's."""
    previews: list[Any] = []
    requests: list[RequestState] = []
    for request in task.requests:
        output = [dict(o) if type(o) is dict else o for o in request.output]
        previews.extend(output)
        requests.append(msgspec.structs.replace(request, output=output))
    links = task_links(task.task_id) if task.links is UNLINKED else task.links
    return msgspec.structs.replace(
        task, requests=requests, previews=previews, children=list(task.children), links=links
    )


def _event(task: Task, type_: EventType, now: str, data: Any, index: int | None) -> Event:
    task.last_seq += 1
    task.updated_at = now
    return Event(
        task_id=task.task_id, seq=task.last_seq, type=type_, time=now, data=data, index=index
    )


def _finish(task: Task, status: TaskStatus, now: str) -> Event:
    task.status = status
    task.finished_at = now
    if status is TaskStatus.FAILED and task.error is None:
        task.error = next((r.error for r in task.requests if r.error is not None), None)
    task.last_seq += 1
    task.updated_at = now
    return Event(
        task_id=task.task_id,
        seq=task.last_seq,
        type=TASK_TERMINAL_EVENTS[status],
        time=now,
        data=task_view(task),
    )


def _final_status(task: Task) -> TaskStatus:
    statuses = {r.status for r in task.requests}
    if statuses == {RequestStatus.COMPLETED}:
        return TaskStatus.COMPLETED
    if statuses == {RequestStatus.FAILED}:
        return TaskStatus.FAILED
    return TaskStatus.PARTIAL


def _checked_delta(request: RequestState, data: Any) -> tuple[Delta, int | None]:
    """The delta and the position in ``request.output`` of the output it grows (None when
    that output left the task); raises ``IllegalTransition`` for a delta that cannot apply."""
    try:
        delta = msgspec.convert(data, Delta)
    except msgspec.ValidationError as exc:
        raise IllegalTransition(f"request.delta: {exc}", details={"index": request.index}) from None
    emitted = request.outputs_dropped + len(request.output)
    if delta.output >= emitted:
        raise IllegalTransition(
            f"request.delta: output {delta.output} does not exist ({emitted} emitted)",
            details={"index": request.index, "output": delta.output},
        )
    position = delta.output - request.outputs_dropped
    if position < 0:
        return delta, None
    item = request.output[position]
    if not isinstance(item, dict) or not isinstance(item.get(delta.field), str):
        raise IllegalTransition(
            f"request.delta: field `{delta.field}` of output {delta.output} is not a string",
            details={"index": request.index, "output": delta.output, "field": delta.field},
        )
    return delta, position


def append(
    task: Task,
    type_: EventType,
    index: int,
    data: Any,
    now: str,
    bounds: OutputBounds | None = None,
) -> list[Event]:
    """Apply one ``request.*`` event to ``task``; return the events appended (maybe none).

    Nothing is appended to a finished task, nor to a finished request: work that outlives a
    cancel, or a duplicate delivery, is discarded here, in one place. ``bounds`` (kept by the
    caller, one per task) limits the outputs the task holds; without it the task holds all.
    """
    if task.status is TaskStatus.RUNNING and (
        type_ is EventType.REQUEST_DELTA or type_ is EventType.REQUEST_OUTPUT
    ):
        request = task.requests[index] if 0 <= index < len(task.requests) else None
        if request is not None and request.status is RequestStatus.RUNNING:
            # The events a skill sends most, on a running request of a running task: the rules
            # below reduce to this (no transition, no terminal check); one state test.
            if type_ is EventType.REQUEST_OUTPUT:
                return [_output(task, request, index, data, now, bounds)]
            if _grew(task, request, index, data, bounds):
                return [_event(task, type_, now, data, index)]
    rule = REQUEST_TRANSITIONS.get(type_)
    if rule is None:
        raise IllegalTransition(f"{type_} is not a request event")
    if not 0 <= index < len(task.requests):
        raise IllegalTransition(f"request index {index} out of range")
    if task.status in TERMINAL_TASK_STATUSES:
        return []
    request = task.requests[index]
    if request.status in TERMINAL_REQUEST_STATUSES:
        return []
    allowed_from, to = rule
    if request.status not in allowed_from:
        raise IllegalTransition(
            f"{type_} cannot follow request status {request.status}",
            details={"index": index, "status": request.status},
        )
    delta: tuple[Delta, int | None] | None = None
    if type_ is EventType.REQUEST_DELTA:
        delta = _checked_delta(request, data)
    elif type_ is EventType.REQUEST_COMPLETED and not isinstance(data, dict):
        raise IllegalTransition(
            "request.completed data must be an object", details={"index": index}
        )
    events: list[Event] = []
    if type_ is EventType.REQUEST_STARTED and task.status is TaskStatus.QUEUED:
        task.status = TaskStatus.RUNNING
        events.append(_event(task, EventType.TASK_STARTED, now, {}, None))
    request.status = to
    if type_ is EventType.REQUEST_STARTED:
        request.output = []
        request.outputs_dropped = 0
        request.result = None
        request.progress = 0.0
        if bounds is not None:
            bounds.reset(index)
    elif type_ is EventType.REQUEST_PROGRESS:
        request.progress = float(data.get("progress", request.progress))
    elif type_ is EventType.REQUEST_OUTPUT:
        return [_output(task, request, index, data, now, bounds)]
    elif delta is not None:
        _apply_delta(task, index, *delta, bounds)
    elif type_ is EventType.REQUEST_COMPLETED:
        request.progress = 1.0
        request.result = data or None
    elif type_ is EventType.REQUEST_FAILED:
        request.error = msgspec.convert(data["error"], ErrorDetail)
    elif type_ is EventType.REQUEST_CALL:
        child = data.get("task_id") if isinstance(data, dict) else None
        if isinstance(child, str):
            task.children.append(child)
    events.append(_event(task, type_, now, data, index))
    if to in TERMINAL_REQUEST_STATUSES and all(
        r.status in TERMINAL_REQUEST_STATUSES for r in task.requests
    ):
        events.append(_finish(task, _final_status(task), now))
    return events


def _output(
    task: Task, request: RequestState, index: int, data: Any, now: str, bounds: OutputBounds | None
) -> Event:
    """``request.output`` on a running request: the output kept, the event appended."""
    # The task's own copy: a delta grows it in place, never the event's data.
    request.output.append(dict(data) if type(data) is dict else data)
    if bounds is not None:
        encoded = encode(data)
        bounds.added(task, index, len(encoded))
        # The event carries the output's JSON as encoded for the bounds: the event's encoding
        # splices it in, so the output is encoded once per event, not twice.
        data = msgspec.Raw(encoded)
    return _event(task, EventType.REQUEST_OUTPUT, now, data, index)


def _grew(
    task: Task, request: RequestState, index: int, data: Any, bounds: OutputBounds | None
) -> bool:
    """Apply a token's delta as the full rules would, without converting it to ``Delta``;
    False, with nothing changed, for any delta they must look at (wrong shape or types, an
    output dropped or never emitted, a field that is not a string): they decide those."""
    if type(data) is not dict:
        return False
    output, field, text = data.get("output"), data.get("field"), data.get("append")
    if type(output) is not int or type(field) is not str or type(text) is not str:
        return False
    position = output - request.outputs_dropped
    if not 0 <= position < len(request.output):
        return False
    item = request.output[position]
    if type(item) is not dict or type(item.get(field)) is not str:
        return False
    if text:
        _grow(task, index, item, field, position, text, bounds)
    return True


def _grow(
    task: Task,
    index: int,
    item: dict[str, Any],
    field: str,
    position: int,
    text: str,
    bounds: OutputBounds | None,
) -> None:
    # In place, in amortised O(len(text)): with the dict's reference dropped, ``grown`` is the
    # string's only reference and CPython grows it where it lies (a view shares the old string
    # only after task_view copied the dict, and then the concatenation copies instead).
    grown = item[field]
    item[field] = None
    grown += text
    item[field] = grown
    if bounds is not None:
        bounds.grew(task, index, position, len(encode(text)) - 2)


def _apply_delta(
    task: Task, index: int, delta: Delta, position: int | None, bounds: OutputBounds | None
) -> None:
    if position is None or not delta.append:
        return  # that output left the task: the delta is only in the log
    item = task.requests[index].output[position]
    _grow(task, index, item, delta.field, position, delta.append, bounds)


def cancel(task: Task, now: str) -> Event:
    """Cancel ``task``: unfinished requests become cancelled; returns ``task.cancelled``."""
    if task.status in TERMINAL_TASK_STATUSES:
        raise Conflict(
            f"task {task.task_id} is already {task.status}", details={"status": task.status}
        )
    for request in task.requests:
        if request.status not in TERMINAL_REQUEST_STATUSES:
            request.status = RequestStatus.CANCELLED
    return _finish(task, TaskStatus.CANCELLED, now)
