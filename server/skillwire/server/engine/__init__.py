"""The engine: apps and skills, the worker pool, and task operations."""

from __future__ import annotations

from ._app import App, SkillSpec
from ._context import Context, StreamedOutput
from ._demo import demo
from ._registry import Registry, load_app
from ._remote import HandedOff, RemoteQueue, RemoteSkills, RemoteWorker, WorkerLost
from ._remote_pool import RemotePool
from ._tasks import CallResult, TaskService
from ._worker import WorkerPool

__all__ = [
    "App",
    "CallResult",
    "Context",
    "HandedOff",
    "Registry",
    "RemotePool",
    "RemoteQueue",
    "RemoteSkills",
    "RemoteWorker",
    "SkillSpec",
    "StreamedOutput",
    "TaskService",
    "WorkerLost",
    "WorkerPool",
    "demo",
    "load_app",
]
