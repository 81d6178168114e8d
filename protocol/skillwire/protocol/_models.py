"""The wire objects of API v1 as msgspec Structs.

Schema evolution follows msgspec's rules: a new field always gets a default and a field's
type never changes, so old peers keep decoding new messages. Inbound structs tolerate
unknown fields (msgspec's default).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

import msgspec

__all__ = [
    "SESSION_SNAPSHOT_TASKS",
    "AppSkills",
    "AppsList",
    "CallBody",
    "Delivery",
    "DeliveryList",
    "DeliveryStatus",
    "Delta",
    "ErrorBody",
    "ErrorDetail",
    "ErrorEnvelope",
    "Event",
    "EventType",
    "HealthStatus",
    "ReadyStatus",
    "RequestState",
    "RequestStatus",
    "Session",
    "SessionBody",
    "SessionEvent",
    "SessionEventType",
    "SessionList",
    "SessionSnapshot",
    "SessionStatus",
    "SessionTask",
    "Skill",
    "SkillMode",
    "Task",
    "TaskLinks",
    "TaskList",
    "TaskStatus",
    "Ticket",
    "WebhookPayload",
]

Slug = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9_-]{1,64}$")]


class TaskStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    PARTIAL = "partial"
    FAILED = "failed"
    CANCELLED = "cancelled"


class RequestStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class EventType(StrEnum):
    TASK_QUEUED = "task.queued"
    TASK_STARTED = "task.started"
    REQUEST_QUEUED = "request.queued"
    REQUEST_STARTED = "request.started"
    REQUEST_PROGRESS = "request.progress"
    REQUEST_OUTPUT = "request.output"
    REQUEST_COMPLETED = "request.completed"
    REQUEST_FAILED = "request.failed"
    REQUEST_DELTA = "request.delta"
    REQUEST_CALL = "request.call"
    TASK_SNAPSHOT = "task.snapshot"
    TASK_COMPLETED = "task.completed"
    TASK_PARTIAL = "task.partial"
    TASK_FAILED = "task.failed"
    TASK_CANCELLED = "task.cancelled"


class SkillMode(StrEnum):
    QUICK = "quick"
    LONG = "long"


class ErrorDetail(msgspec.Struct):
    """An error as it appears inside a task (``request.failed``, ``Task.error``)."""

    code: str
    message: str
    details: dict[str, Any] = {}


class ErrorBody(msgspec.Struct):
    code: str
    message: str
    details: dict[str, Any] = {}
    request_id: str | None = None


class ErrorEnvelope(msgspec.Struct):
    """The body of every non-2xx JSON response."""

    error: ErrorBody


class RequestState(msgspec.Struct):
    """One sub-request as the Task shows it.

    ``output`` holds its latest outputs: output ``n`` (counted from 0 since the request's
    latest ``request.started``) sits at ``output[n - outputs_dropped]`` while the Task still
    holds it. ``result`` is the data of its ``request.completed``, or None.
    """

    index: int
    status: RequestStatus = RequestStatus.QUEUED
    progress: float = 0.0
    output: list[Any] = []
    outputs_dropped: int = 0
    result: dict[str, Any] | None = None
    error: ErrorDetail | None = None


class TaskLinks(msgspec.Struct):
    self: str
    events: str


class Task(msgspec.Struct):
    task_id: str
    app: str
    skill: str
    status: TaskStatus
    created_at: str
    updated_at: str
    finished_at: str | None
    requests: list[RequestState]
    previews: list[Any]
    error: ErrorDetail | None
    last_seq: int
    metadata: dict[str, Any]
    links: TaskLinks
    session_id: str | None = None
    parent_task_id: str | None = None
    children: list[str] = []


class Event(msgspec.Struct, omit_defaults=True):
    """One entry of a task's log. ``index`` is present on ``request.*`` events only."""

    task_id: str
    seq: int
    type: EventType
    time: str
    data: Any
    index: int | None = None


class Delta(msgspec.Struct):
    """The data of ``request.delta``: ``append`` goes at the end of string field ``field`` of
    output ``output`` of the event's request."""

    output: Annotated[int, msgspec.Meta(ge=0)]
    field: str
    append: str


class Skill(msgspec.Struct, omit_defaults=True):
    app: str
    skill: str
    description: str
    mode: SkillMode
    input_schema: dict[str, Any]
    max_requests: int
    remote: bool = False  # served by a remote worker; only shown when true


class AppSkills(msgspec.Struct):
    app: str
    skills: list[Skill]


class AppsList(msgspec.Struct):
    items: list[AppSkills]


class TaskList(msgspec.Struct):
    items: list[Task]
    total: int
    limit: int
    offset: int


class CallBody(msgspec.Struct):
    """The body of ``POST /api/v1/apps/{app}/{skill}``; each request is checked per skill."""

    requests: Annotated[list[dict[str, Any]], msgspec.Meta(min_length=1)]
    webhook_url: str | None = None
    metadata: dict[str, Any] = {}
    version: str = "1"
    session_id: str | None = None


class Ticket(msgspec.Struct):
    ticket: str
    expires_in: int


class HealthStatus(msgspec.Struct):
    status: Literal["ok"] = "ok"


class ReadyStatus(msgspec.Struct):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str]


class WebhookPayload(msgspec.Struct):
    type: str
    timestamp: str
    data: Task


class DeliveryStatus(StrEnum):
    """Where a webhook delivery stands: still being tried, received (2xx), or given up."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class Delivery(msgspec.Struct):
    """One webhook delivery of a task's result to one URL (admin API).

    ``id`` is the ``webhook-id`` header sent on every attempt; ``next_attempt_at`` is set
    while a pending delivery waits for its next attempt (null while one is in flight and once
    it is delivered or failed).
    """

    id: str
    url: str
    task_id: str
    type: str
    status: DeliveryStatus
    attempts: int
    last_error: str | None
    next_attempt_at: str | None
    created_at: str


class DeliveryList(msgspec.Struct):
    items: list[Delivery]
    total: int
    limit: int
    offset: int


class SessionStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class SessionEventType(StrEnum):
    SESSION_TASK = "session.task"
    TASK_EVENT = "task.event"
    SESSION_CLOSED = "session.closed"
    SESSION_SNAPSHOT = "session.snapshot"


class Session(msgspec.Struct):
    """A group of tasks followed with one cursor. ``last_seq`` is its own log's last seq;
    ``task_ids`` lists its tasks in the order they joined."""

    session_id: str
    title: str | None
    metadata: dict[str, Any]
    status: SessionStatus
    created_at: str
    updated_at: str
    last_seq: int
    task_ids: list[str] = []


class SessionBody(msgspec.Struct):
    """The body of ``POST /api/v1/sessions``."""

    title: Annotated[str, msgspec.Meta(max_length=500)] | None = None
    metadata: dict[str, Any] = {}


class SessionList(msgspec.Struct):
    items: list[Session]
    total: int
    limit: int
    offset: int


class SessionEvent(msgspec.Struct):
    """One entry of a session's log; ``seq`` is the session's own, from 1."""

    session_id: str
    seq: int
    type: SessionEventType
    time: str
    data: Any


class SessionTask(msgspec.Struct):
    """The data of ``session.task``: a task joined the session."""

    task_id: str
    app: str
    skill: str
    parent_task_id: str | None = None


SESSION_SNAPSHOT_TASKS = 100  # the tasks a session.snapshot carries: the session's last ones


class SessionSnapshot(msgspec.Struct):
    """The data of ``session.snapshot``: the session and its last tasks, as of its ``seq``."""

    session: Session
    tasks: list[Task]
