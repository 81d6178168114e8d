"""skillwire.client: the Python client of skillwire's API v1, async and sync.

``AsyncClient`` (asyncio) and ``Client`` (blocking) have the same methods: ``apps``,
``skill``, ``call``, ``task``, ``tasks``, ``iter_tasks``, ``cancel``, ``events``, ``stream``
and ``stream_text``. ``events`` and ``stream`` follow a task over WebSocket, SSE, NDJSON or
polling (``transport="auto"`` tries them in that order), reconnect with backoff and resume
after the last event they yielded, so each event arrives exactly once, in order.
``stream_text`` yields the text of a streamed output (an LLM's answer) as it grows, and
``TaskOutputs`` keeps each request's outputs up to date from a task's events.

Errors are one tree rooted at ``SkillwireError``: the server's error codes map onto the
protocol's classes (``NotFound``, ``Unauthorized``, …) and connection trouble onto
``TransportError``. The ``skillwire-client`` command is a CLI over the same API.

``Worker`` serves skills from this process as a remote worker of a gateway.
"""

from __future__ import annotations

from skillwire.protocol import (
    AppSkills,
    BadRequest,
    Conflict,
    ErrorDetail,
    Event,
    EventType,
    Expired,
    Forbidden,
    InternalError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    RequestState,
    RequestStatus,
    ServiceUnavailable,
    Session,
    SessionEvent,
    SessionEventType,
    SessionList,
    SessionStatus,
    Skill,
    SkillMode,
    SkillwireError,
    Task,
    TaskList,
    TaskStatus,
    Unauthorized,
    UnsupportedVersion,
    ValidationError,
)

from ._backoff import Backoff
from ._client import AsyncClient
from ._errors import TransportError, TransportTimeout, TransportUnavailable
from ._events import event_task, is_terminal
from ._outputs import Appended, RequestOutputs, TaskOutputs
from ._session_handle import AsyncSession
from ._settings import StreamTransport, TransportName
from ._sync import Client, SyncSession
from ._worker import WorkContext, Worker

__all__ = [
    "AppSkills",
    "Appended",
    "AsyncClient",
    "AsyncSession",
    "Backoff",
    "BadRequest",
    "Client",
    "Conflict",
    "ErrorDetail",
    "Event",
    "EventType",
    "Expired",
    "Forbidden",
    "InternalError",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "RequestOutputs",
    "RequestState",
    "RequestStatus",
    "ServiceUnavailable",
    "Session",
    "SessionEvent",
    "SessionEventType",
    "SessionList",
    "SessionStatus",
    "Skill",
    "SkillMode",
    "SkillwireError",
    "StreamTransport",
    "SyncSession",
    "Task",
    "TaskList",
    "TaskOutputs",
    "TaskStatus",
    "TransportError",
    "TransportName",
    "TransportTimeout",
    "TransportUnavailable",
    "Unauthorized",
    "UnsupportedVersion",
    "ValidationError",
    "WorkContext",
    "Worker",
    "event_task",
    "is_terminal",
]
