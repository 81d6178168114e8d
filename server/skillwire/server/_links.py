"""Links in answers follow where the app is mounted: the ASGI ``root_path``.

A stored Task's links are relative to the app (``/api/v1/tasks/{id}``), whatever it is mounted
under: one task is answered by every gateway of a deployment, and they need not be mounted
alike. Each answer puts its own request's ``root_path`` in front of them (``Location``, the
Task's ``links``, and the Task inside a terminal event or a ``task.snapshot``). Unmounted, the
root is empty and everything passes through untouched, at no cost.

Webhook payloads are built when the task ends, outside any request: their links stay relative
to the app.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import msgspec
from starlette.types import Scope

from skillwire.protocol import EncodedEvent, EventType, Task, TaskLinks, decode_json, encode

__all__ = ["is_openai_path", "root_of", "rooted_event", "rooted_frame", "rooted_task"]

T = TypeVar("T")


def root_of(scope: Scope) -> str:
    """The path the app is mounted under, without a trailing slash ("" when it is not)."""
    root: str = scope.get("root_path", "")
    return root.rstrip("/")


def rooted_task(task: Task, root: str) -> Task:
    """``task`` with ``root`` in front of its links."""
    if not root:
        return task
    links = TaskLinks(self=root + task.links.self, events=root + task.links.events)
    return msgspec.structs.replace(task, links=links)


def rooted_event(event: EncodedEvent, root: str) -> EncodedEvent:
    """``event``, or, when it carries a Task (a terminal event, a snapshot), a copy whose
    Task has ``root`` in front of its links. Only these few events are decoded again."""
    if not root or not (event.terminal or event.type == EventType.TASK_SNAPSHOT):
        return event
    decoded: Any = decode_json(event.json)
    data = decoded.get("data") if isinstance(decoded, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("links"), dict):
        return event
    data["links"] = {
        name: root + url if isinstance(url, str) else url for name, url in data["links"].items()
    }
    return EncodedEvent(event.seq, event.type, encode(decoded))


def rooted_frame(frame: Callable[[EncodedEvent], T], root: str) -> Callable[[EncodedEvent], T]:
    """``frame`` (an event to the bytes or text a channel sends), applied to rooted events."""
    if not root:
        return frame
    return lambda event: frame(rooted_event(event, root))


def is_openai_path(scope: Scope) -> bool:
    """The OpenAI-compatible front door (``/v1/...`` below the app's mount point)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root + "/"):
        path = path[len(root) :]
    return path.startswith("/v1/")
