"""Framing (``_framing.py``): one event's bytes as SSE, NDJSON and WebSocket frames."""

from __future__ import annotations

import json

import pytest

from skillwire.protocol import (
    NDJSON_HEARTBEAT,
    SSE_HEARTBEAT,
    EncodedEvent,
    Event,
    EventMessage,
    EventType,
    Heartbeat,
    decode_event,
    decode_server_message,
    encode,
    encode_server_message,
    lifecycle,
    sse_retry,
    ws_heartbeat,
)

TIME = "2026-11-23T12:00:00.123456Z"
EVENT = Event(
    task_id="tsk_x",
    seq=3,
    type=EventType.REQUEST_OUTPUT,
    time=TIME,
    data={"type": "text", "text": "line one\nline two"},
    index=0,
)
TERMINAL_TYPES = {"task.completed", "task.partial", "task.failed", "task.cancelled"}


def test_json_is_the_encoded_event() -> None:
    """EncodedEvent.of keeps the event's seq, type and JSON bytes (one line, no newline)."""
    encoded = EncodedEvent.of(EVENT)
    assert (encoded.seq, encoded.type) == (3, "request.output")
    assert encoded.json == encode(EVENT)
    assert b"\n" not in encoded.json
    assert decode_event(encoded.json) == EVENT


def test_sse_frame() -> None:
    """The SSE frame is exactly ``id: N``, ``event: TYPE``, ``data: JSON`` and a blank line."""
    encoded = EncodedEvent.of(EVENT)
    assert encoded.sse == b"id: 3\nevent: request.output\ndata: " + encoded.json + b"\n\n"


def test_sse_frame_parses_back_to_the_event() -> None:
    """Reading the SSE fields back gives the id, the event type and the event itself."""
    lines = EncodedEvent.of(EVENT).sse.decode().split("\n")
    assert lines[3:] == ["", ""]
    fields = dict(line.split(": ", 1) for line in lines[:3])
    assert fields["id"] == "3"
    assert fields["event"] == "request.output"
    assert decode_event(fields["data"]) == EVENT


def test_ndjson_frame() -> None:
    """The NDJSON frame is the event's JSON followed by one newline."""
    encoded = EncodedEvent.of(EVENT)
    assert encoded.ndjson == encoded.json + b"\n"


def test_ws_frame() -> None:
    """The WS frame is {"op":"event","event":JSON} and decodes to an EventMessage."""
    encoded = EncodedEvent.of(EVENT)
    assert encoded.ws == b'{"op":"event","event":' + encoded.json + b"}"
    assert json.loads(encoded.ws) == {"op": "event", "event": json.loads(encoded.json)}
    assert decode_server_message(encoded.ws) == EventMessage(event=EVENT)
    assert encoded.ws == encode_server_message(EventMessage(event=EVENT))


def test_frames_are_cached() -> None:
    """Each frame is built once: a second access returns the same bytes object."""
    encoded = EncodedEvent.of(EVENT)
    assert encoded.sse is encoded.sse
    assert encoded.ndjson is encoded.ndjson
    assert encoded.ws is encoded.ws


@pytest.mark.parametrize("type_", list(EventType))
def test_terminal_flag(type_: EventType) -> None:
    """Only task.completed, task.partial, task.failed and task.cancelled are terminal."""
    event = Event(task_id="t", seq=1, type=type_, time=TIME, data={})
    assert EncodedEvent.of(event).terminal is (type_ in TERMINAL_TYPES)


def test_terminal_event_with_a_task_frames_it() -> None:
    """A terminal event carrying the final Task frames it like any other event."""
    task, _ = lifecycle.new_task("tsk_x", "demo", "echo", 1, {}, TIME)
    event = lifecycle.cancel(task, TIME)
    encoded = EncodedEvent.of(event)
    assert encoded.terminal
    assert encoded.sse.startswith(b"id: 2\nevent: task.cancelled\ndata: {")
    message = decode_server_message(encoded.ws)
    assert isinstance(message, EventMessage)
    assert message.event.data["last_seq"] == 2


def test_constructor_takes_prebuilt_json() -> None:
    """An EncodedEvent can wrap JSON read back from a store, without re-encoding it."""
    encoded = EncodedEvent(7, "task.failed", b'{"seq":7}')
    assert encoded.sse == b'id: 7\nevent: task.failed\ndata: {"seq":7}\n\n'
    assert encoded.terminal
    assert "seq=7" in repr(encoded)


@pytest.mark.parametrize("type_", list(EventType))
def test_terminal_follows_from_the_type(type_: EventType) -> None:
    """An event is terminal exactly when the lifecycle's table makes its type end a task."""
    encoded = EncodedEvent(3, type_.value, b"{}")
    assert encoded.terminal is (type_ in lifecycle.TASK_TERMINAL_EVENTS.values())


def test_sse_retry() -> None:
    """sse_retry writes the ``retry:`` field in milliseconds, as its own block."""
    assert sse_retry(3000) == b"retry: 3000\n\n"
    assert sse_retry(0) == b"retry: 0\n\n"


def test_heartbeats() -> None:
    """The SSE heartbeat is a comment line; the NDJSON heartbeat is an empty line."""
    assert SSE_HEARTBEAT == b": heartbeat\n\n"
    assert NDJSON_HEARTBEAT == b"\n"


def test_ws_heartbeat() -> None:
    """ws_heartbeat is the encoded Heartbeat op, and decodes back to it."""
    frame = ws_heartbeat(TIME)
    assert frame == b'{"op":"heartbeat","time":"' + TIME.encode() + b'"}'
    assert frame == encode_server_message(Heartbeat(time=TIME))
    assert decode_server_message(frame) == Heartbeat(time=TIME)
