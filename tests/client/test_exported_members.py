"""The public surface of skillwire.client is exactly what we mean it to be."""

from __future__ import annotations

import skillwire.client
import skillwire.protocol


def test_public_names() -> None:
    """__all__ lists the clients, their errors, Backoff, helpers and the models they return."""
    assert set(skillwire.client.__all__) == {
        "AsyncClient",
        "Client",
        "Backoff",
        "TransportName",
        "StreamTransport",
        "event_task",
        "is_terminal",
        # streamed outputs, kept up to date from events
        "TaskOutputs",
        "RequestOutputs",
        "Appended",
        # errors: the protocol's tree plus the transport branch
        "SkillwireError",
        "BadRequest",
        "UnsupportedVersion",
        "Unauthorized",
        "Forbidden",
        "NotFound",
        "MethodNotAllowed",
        "Conflict",
        "Expired",
        "PayloadTooLarge",
        "ValidationError",
        "WorkContext",
        "Worker",
        "RateLimited",
        "InternalError",
        "ServiceUnavailable",
        "TransportError",
        "TransportTimeout",
        "TransportUnavailable",
        # the wire models the methods return
        "AppSkills",
        "Skill",
        "SkillMode",
        "Task",
        "TaskList",
        "TaskStatus",
        "RequestState",
        "RequestStatus",
        "ErrorDetail",
        "Event",
        "EventType",
        # sessions: a conversation's tasks followed with one cursor
        "AsyncSession",
        "SyncSession",
        "Session",
        "SessionEvent",
        "SessionEventType",
        "SessionList",
        "SessionStatus",
    }


def test_every_public_name_is_defined() -> None:
    """Each name in __all__ is importable from the package."""
    for name in skillwire.client.__all__:
        assert hasattr(skillwire.client, name), name


def test_models_and_errors_are_the_protocols_own() -> None:
    """Re-exported models and errors are the protocol's classes, not copies."""
    for name in ("Task", "Event", "Skill", "SkillwireError", "NotFound", "Unauthorized"):
        assert getattr(skillwire.client, name) is getattr(skillwire.protocol, name)


def test_public_objects_say_where_they_live() -> None:
    """Private modules stay private: public classes are defined in skillwire.client._*."""
    for name in ("AsyncClient", "Client", "Backoff", "TransportError"):
        module = getattr(skillwire.client, name).__module__
        assert module.startswith("skillwire.client._"), module
