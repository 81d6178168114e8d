"""Each request's outputs of one task, kept up to date from its events (streamed outputs).

A streamed output is a ``request.output`` whose item has a string field, grown by
``request.delta`` events ``{"output": n, "field": "text", "append": "lo"}`` (API.md,
"Streamed outputs"). ``n`` counts the request's outputs from 0 since its latest
``request.started``, including outputs the Task no longer holds: output ``n`` sits at
``output[n - outputs_dropped]``. A ``task.snapshot`` (or a terminal event) carries the Task
with the accumulated values and replaces what was built so far.

Appends are not concatenated at once: a long answer grown by tens of thousands of deltas
would copy its whole text on each one. They are kept as pieces and joined when an output is
read, so following a stream costs time in proportion to its length.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from skillwire.protocol import Event, EventType, Task, to_builtins

from ._events import TERMINAL_EVENT_TYPES

__all__ = ["Appended", "RequestOutputs", "TaskOutputs", "TextCursor"]

_RESETS = TERMINAL_EVENT_TYPES | {EventType.TASK_SNAPSHOT}


@dataclass(frozen=True)
class Appended:
    """What one applied ``request.delta`` did: ``append`` went onto ``field`` of output ``n``
    of request ``index``, whose value was ``before`` characters long."""

    index: int
    n: int
    field: str
    before: int
    append: str


def _copy(item: Any) -> Any:
    # Outputs are grown in place: never the dict of an event the caller also holds.
    return dict(item) if isinstance(item, dict) else item


class RequestOutputs:
    """The outputs of one request that the Task holds, and how many left it before them."""

    __slots__ = ("_items", "_lengths", "_pending", "outputs_dropped")

    def __init__(self, outputs_dropped: int = 0) -> None:
        self.outputs_dropped = outputs_dropped
        self._items: list[Any] = []
        # (n, field) -> appends not yet joined into the item, and the value's length with them
        self._pending: dict[tuple[int, str], list[str]] = {}
        self._lengths: dict[tuple[int, str], int] = {}

    @property
    def output(self) -> list[Any]:
        """The outputs held, oldest first, with every append applied."""
        for (n, name), pieces in self._pending.items():
            item = self._items[n - self.outputs_dropped]
            item[name] = item[name] + "".join(pieces)
        self._pending.clear()
        return self._items

    @property
    def count(self) -> int:
        """How many outputs the request has emitted (held or dropped)."""
        return self.outputs_dropped + len(self._items)

    def get(self, n: int) -> Any:
        """Output number ``n`` (appends applied), or None when it is not held."""
        position = n - self.outputs_dropped
        if not 0 <= position < len(self._items):
            return None
        return self.output[position]

    def length(self, n: int, name: str) -> int | None:
        """The length of string field ``name`` of output ``n``; None when there is none."""
        known = self._lengths.get((n, name))
        if known is not None:
            return known
        position = n - self.outputs_dropped
        if not 0 <= position < len(self._items):
            return None
        item = self._items[position]
        if not isinstance(item, dict) or not isinstance(item.get(name), str):
            return None
        return len(item[name]) + sum(len(p) for p in self._pending.get((n, name), ()))

    def emit(self, item: Any) -> None:
        self._items.append(_copy(item))

    def append(self, index: int, n: int, name: str, text: str) -> Appended | None:
        """Apply one delta; None when it does not apply (an output the Task no longer holds,
        or a field that is not a string)."""
        before = self.length(n, name)
        if before is None:
            return None
        self._pending.setdefault((n, name), []).append(text)
        self._lengths[(n, name)] = before + len(text)
        return Appended(index, n, name, before, text)


class TaskOutputs:
    """The outputs of each request of one task, kept up to date as its events arrive.

    Feed it every event of a task, in order (``apply``): ``request.output`` adds an output,
    ``request.delta`` grows one, ``request.started`` starts a request afresh, and a
    ``task.snapshot`` or terminal event replaces everything with the Task it carries (so a
    late join or a resume that got a snapshot is right again). Events at or below the last
    seq applied are ignored, as are event types it does not know::

        outputs = TaskOutputs()
        async for event in client.events(task_id, snapshot=True):
            outputs.apply(event)
            print(outputs.text())
    """

    def __init__(self, task: Task | Mapping[str, Any] | None = None) -> None:
        self.requests: dict[int, RequestOutputs] = {}
        self.last_seq = 0
        if task is not None:
            self.reset(task)

    def reset(self, task: Task | Mapping[str, Any]) -> None:
        """Start again from ``task`` (a Task, or one as decoded JSON)."""
        data: Any = to_builtins(task) if isinstance(task, Task) else task
        self.requests = {}
        for request in data.get("requests") or ():
            if not isinstance(request, dict):
                continue
            held = RequestOutputs(outputs_dropped=int(request.get("outputs_dropped") or 0))
            for item in request.get("output") or ():
                held.emit(item)
            self.requests[int(request.get("index", len(self.requests)))] = held
        last_seq = data.get("last_seq")
        if isinstance(last_seq, int):
            self.last_seq = last_seq

    def request(self, index: int) -> RequestOutputs:
        """The outputs of request ``index`` (empty until it has some)."""
        return self.requests.setdefault(index, RequestOutputs())

    def apply(self, event: Event) -> Appended | None:
        """Apply one event; returns the append when the event was a delta that applied."""
        if event.seq < self.last_seq or (event.seq == self.last_seq and event.type not in _RESETS):
            return None  # applied already (a replay, or the snapshot we started from)
        self.last_seq = event.seq
        kind = event.type
        data: Any = event.data
        if kind in _RESETS:
            if isinstance(data, dict):
                self.reset(data)
            return None
        if event.index is None:
            return None
        if kind == EventType.REQUEST_STARTED:
            self.requests[event.index] = RequestOutputs()
        elif kind == EventType.REQUEST_OUTPUT:
            self.request(event.index).emit(data)
        elif kind == EventType.REQUEST_DELTA and isinstance(data, dict):
            n, name, text = data.get("output"), data.get("field"), data.get("append")
            if isinstance(n, int) and isinstance(name, str) and isinstance(text, str):
                return self.request(event.index).append(event.index, n, name, text)
        return None

    def output(self, index: int = 0) -> list[Any]:
        """The outputs request ``index`` holds now, appends applied."""
        return self.request(index).output

    def streamed(self, index: int = 0, field: str = "text") -> int | None:
        """The number of the first output of request ``index`` whose ``field`` is a string
        (the one ``text()`` reads by default), or None while there is none."""
        held = self.request(index)
        for position, item in enumerate(held._items):
            if isinstance(item, dict) and isinstance(item.get(field), str):
                return held.outputs_dropped + position
        return None

    def text(self, index: int = 0, output: int | None = None, field: str = "text") -> str:
        """String ``field`` of output number ``output`` of request ``index`` as it stands
        (default: the first output that has it); "" when there is no such output."""
        n = self.streamed(index, field) if output is None else output
        if n is None:
            return ""
        item = self.request(index).get(n)
        value = item.get(field) if isinstance(item, dict) else None
        return value if isinstance(value, str) else ""


class TextCursor:
    """What of one streamed text was handed out already, so it is handed out exactly once.

    ``advance`` is called after each event applied to ``outputs`` and returns the characters
    not handed out yet: the delta's own text in the common case, or, after a snapshot
    replaced the outputs (a late join, a resume past what the log keeps, a re-run), the part
    of the text beyond what was handed out. The followed output is output ``output`` of
    request ``index``, or the first one whose ``field`` is a string.
    """

    def __init__(
        self, outputs: TaskOutputs, index: int = 0, output: int | None = None, field: str = "text"
    ) -> None:
        self.outputs = outputs
        self.index = index
        self.n = output
        self.field = field
        self.sent = 0  # characters handed out

    def advance(self, appended: Appended | None = None) -> str:
        if self.n is None:
            self.n = self.outputs.streamed(self.index, self.field)
            if self.n is None:
                return ""
        if (
            appended is not None
            and appended.before == self.sent
            and (appended.index, appended.n, appended.field) == (self.index, self.n, self.field)
        ):
            self.sent += len(appended.append)
            return appended.append
        length = self.outputs.request(self.index).length(self.n, self.field)
        if length is None or length <= self.sent:
            return ""
        text = self.outputs.text(self.index, self.n, self.field)
        chunk = text[self.sent :]
        self.sent = len(text)
        return chunk
