"""Mounted under a prefix, the Tasks inside session events carry the prefix in their links."""

from __future__ import annotations

import json

from skillwire.protocol import (
    EncodedEvent,
    EncodedSessionEvent,
    Event,
    EventType,
    SessionEvent,
    SessionEventType,
    format_time,
    lifecycle,
)
from skillwire.server._links import rooted_event

TASK_ID = "tsk_x"
NOW = format_time(0)


def _task() -> object:
    task, _ = lifecycle.new_task(TASK_ID, "demo", "echo", 1, {}, NOW)
    return lifecycle.task_view(task)


def test_a_session_snapshots_tasks_are_rooted() -> None:
    """session.snapshot: each Task's links get the prefix; the event stays a session event."""
    event = EncodedSessionEvent.of_session(
        SessionEvent(
            "ses_x",
            3,
            SessionEventType.SESSION_SNAPSHOT,
            NOW,
            {"session": {"session_id": "ses_x"}, "tasks": [_task()]},
        )
    )
    rooted = rooted_event(event, "/gw")
    assert isinstance(rooted, EncodedSessionEvent)
    assert rooted.ws.startswith(b'{"op":"session_event"')
    links = json.loads(rooted.json)["data"]["tasks"][0]["links"]
    assert links["self"] == f"/gw/api/v1/tasks/{TASK_ID}"


def test_a_wrapped_terminal_events_task_is_rooted_and_others_pass() -> None:
    """task.event of a terminal event: its Task is rooted; an output event passes untouched."""
    terminal = EncodedEvent.of(Event(TASK_ID, 6, EventType.TASK_COMPLETED, NOW, _task()))
    output = EncodedEvent.of(
        Event(TASK_ID, 4, EventType.REQUEST_OUTPUT, NOW, {"links": "not a task"}, index=0)
    )
    wrapped = EncodedSessionEvent.wrapping("ses_x", 7, NOW, terminal)
    plain = EncodedSessionEvent.wrapping("ses_x", 5, NOW, output)
    rooted = rooted_event(wrapped, "/gw")
    assert json.loads(rooted.json)["data"]["data"]["links"]["events"] == (
        f"/gw/api/v1/tasks/{TASK_ID}/events"
    )
    assert isinstance(rooted, EncodedSessionEvent)
    assert rooted_event(plain, "/gw") is plain
    assert rooted_event(wrapped, "") is wrapped
