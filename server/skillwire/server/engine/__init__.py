"""The engine: apps and skills, the worker pool, and task operations."""

from __future__ import annotations

from ._app import App, SkillSpec
from ._context import Context, StreamedOutput
from ._demo import demo
from ._registry import Registry, load_app
from ._remote import HandedOff, RemoteQueue, RemoteSkills
from ._remote_pool import RemotePool
from ._remote_worker import RemoteWorker, WorkerLost
from ._schemas import RawInput, check_schema, declared_skill, schema_checker
from ._tasks import CallResult, TaskService
from ._worker import WorkerPool

__all__ = [
    "App",
    "CallResult",
    "Context",
    "HandedOff",
    "RawInput",
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
    "check_schema",
    "declared_skill",
    "demo",
    "load_app",
    "schema_checker",
]
