"""Following a task by long-polling ``GET /api/v1/tasks/{id}?wait=N``: the last resort.

Polling sees tasks, not their logs, so it cannot replay the events in between: it yields
only the terminal event, rebuilt from the finished Task (``seq`` = the task's ``last_seq``,
``data`` = the Task), preceded by a ``task.snapshot`` when one was asked for.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from skillwire.protocol import Event, Task, lifecycle

from ._events import snapshot_event, task_path, terminal_event
from ._http import HttpTransport

__all__ = ["poll_events"]


async def poll_events(
    http: HttpTransport, task_id: str, after: int, *, snapshot: bool = False
) -> AsyncGenerator[Event, None]:
    wait = http.settings.poll_wait
    path = task_path(task_id)
    if snapshot:
        task = await http.get(Task, path)
        yield snapshot_event(task)
    else:
        task = await http.get(Task, path, params={"wait": wait}, extra_read=wait)
    while task.status not in lifecycle.TERMINAL_TASK_STATUSES:
        task = await http.get(Task, path, params={"wait": wait}, extra_read=wait)
    if task.last_seq > after:
        yield terminal_event(task)
