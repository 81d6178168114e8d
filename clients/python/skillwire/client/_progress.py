"""Live progress bars for a terminal (stdlib only): one line per sub-request, redrawn in place."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from skillwire.protocol import Event, EventType

from ._events import TERMINAL_EVENT_TYPES

__all__ = ["ProgressBars"]

_UP_AND_CLEAR = "\x1b[{n}F"  # cursor to the start of the line n lines up
_CLEAR_LINE = "\x1b[2K"


@dataclass
class _Row:
    status: str = "queued"
    progress: float = 0.0
    outputs: int = 0
    message: str = ""


class ProgressBars:
    """Renders a task's events as a header line and one bar per sub-request.

    Redraws at most every ``min_interval`` seconds (and always on the terminal event), moving
    the cursor back over what it drew last time.
    """

    def __init__(
        self,
        out: TextIO,
        title: str,
        *,
        width: int = 28,
        min_interval: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.out = out
        self.title = title
        self.width = width
        self.min_interval = min_interval
        self.clock = clock
        self.started = clock()
        self.status = "queued"
        self.task_id = ""
        self.rows: dict[int, _Row] = {}
        self._drawn = 0
        self._last_draw = -1e9
        encoding = (getattr(out, "encoding", None) or "").lower()
        self._fill, self._empty = ("█", "░") if "utf" in encoding else ("#", "-")

    def _row(self, index: int) -> _Row:
        return self.rows.setdefault(index, _Row())

    def _load_task(self, task: dict[str, Any]) -> None:
        self.status = str(task.get("status", self.status))
        for request in task.get("requests", []):
            row = self._row(int(request.get("index", 0)))
            row.status = str(request.get("status", row.status))
            row.progress = float(request.get("progress", row.progress))
            row.outputs = len(request.get("output", []))
            error = request.get("error")
            if isinstance(error, dict):
                row.message = str(error.get("message", ""))

    def update(self, event: Event) -> None:
        self.task_id = event.task_id
        data: Any = event.data if isinstance(event.data, dict) else {}
        kind = event.type
        if kind == EventType.TASK_SNAPSHOT or kind in TERMINAL_EVENT_TYPES:
            self._load_task(data)
        elif kind == EventType.TASK_STARTED:
            self.status = "running"
        elif event.index is not None:
            row = self._row(event.index)
            if kind == EventType.REQUEST_QUEUED:
                row.status, row.message = "waiting", str(data.get("reason", ""))
            elif kind == EventType.REQUEST_STARTED:
                row.status, row.progress, row.outputs = "running", 0.0, 0
            elif kind == EventType.REQUEST_PROGRESS:
                row.progress = float(data.get("progress", row.progress))
                row.message = str(data.get("message", ""))
            elif kind == EventType.REQUEST_OUTPUT:
                row.outputs += 1
            elif kind == EventType.REQUEST_COMPLETED:
                row.status, row.progress = "completed", 1.0
            elif kind == EventType.REQUEST_FAILED:
                error = data.get("error") or {}
                row.status, row.message = "failed", str(error.get("message", ""))
        final = kind in TERMINAL_EVENT_TYPES
        if final or self.clock() - self._last_draw >= self.min_interval:
            self.draw()

    def _bar(self, progress: float) -> str:
        filled = round(max(0.0, min(progress, 1.0)) * self.width)
        return self._fill * filled + self._empty * (self.width - filled)

    def lines(self) -> list[str]:
        elapsed = self.clock() - self.started
        header = f"{self.title} {self.task_id} {self.status} ({elapsed:.1f}s)"
        lines = [header]
        for index in sorted(self.rows):
            row = self.rows[index]
            lines.append(
                f"  [{index}] {self._bar(row.progress)} {row.progress * 100:3.0f}% "
                f"{row.status:<9} {row.outputs} out  {row.message}".rstrip()
            )
        return lines

    def forget(self) -> None:
        """Forget what was drawn (other output went below it): the next draw starts afresh."""
        self._drawn = 0

    def draw(self) -> None:
        columns = shutil.get_terminal_size((100, 24)).columns
        parts = [_UP_AND_CLEAR.format(n=self._drawn)] if self._drawn else []
        lines = self.lines()
        for line in lines:
            parts.append(_CLEAR_LINE + line[: max(columns - 1, 20)] + "\n")
        self.out.write("".join(parts))
        self.out.flush()
        self._drawn = len(lines)
        self._last_draw = self.clock()
