"""WebSocket messages (``_ws.py``): the op union, its codecs and client-frame errors."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skillwire.protocol import (
    SUBPROTOCOL,
    Accepted,
    Authenticated,
    AuthOp,
    BadRequest,
    CallOp,
    CancelOp,
    ClientMessage,
    Ended,
    ErrorBody,
    ErrorMessage,
    Event,
    EventMessage,
    EventType,
    Heartbeat,
    InvalidClientMessage,
    Ok,
    PingOp,
    Pong,
    ServerMessage,
    SessionEvent,
    SessionEventMessage,
    SessionEventType,
    Subscribed,
    SubscribeOp,
    UnsubscribeOp,
    ValidationError,
    decode_client_message,
    decode_server_message,
    encode_client_message,
    encode_server_message,
)

EVENT = Event(
    task_id="tsk_x",
    seq=3,
    type=EventType.REQUEST_OUTPUT,
    time="2026-11-23T12:00:00.123456Z",
    data={"type": "text", "text": "hi"},
    index=0,
)
SESSION_EVENT = SessionEvent(
    session_id="ses_x", seq=2, type=SessionEventType.TASK_EVENT, time="T", data={"seq": 1}
)
CLIENT_MESSAGES: list[tuple[ClientMessage, dict[str, Any]]] = [
    (AuthOp(token="sk_1"), {"op": "auth", "token": "sk_1", "ref": None}),
    (
        CallOp(
            app="demo",
            skill="echo",
            requests=[{"text": "a"}],
            ref="r1",
            webhook_url="https://example.org/hook",
            metadata={"m": 1},
        ),
        {
            "op": "call",
            "app": "demo",
            "skill": "echo",
            "requests": [{"text": "a"}],
            "ref": "r1",
            "webhook_url": "https://example.org/hook",
            "metadata": {"m": 1},
            "session_id": None,
            "version": "1",
        },
    ),
    (
        SubscribeOp(task_id="tsk_x", ref="r2", after=5, snapshot=True),
        {
            "op": "subscribe",
            "task_id": "tsk_x",
            "ref": "r2",
            "after": 5,
            "snapshot": True,
            "session_id": None,
        },
    ),
    (
        SubscribeOp(session_id="ses_x", ref="r6", after=3),
        {
            "op": "subscribe",
            "task_id": None,
            "ref": "r6",
            "after": 3,
            "snapshot": False,
            "session_id": "ses_x",
        },
    ),
    (
        UnsubscribeOp(task_id="tsk_x", ref="r5"),
        {"op": "unsubscribe", "task_id": "tsk_x", "ref": "r5", "session_id": None},
    ),
    (
        UnsubscribeOp(session_id="ses_x", ref="r7"),
        {"op": "unsubscribe", "task_id": None, "ref": "r7", "session_id": "ses_x"},
    ),
    (CancelOp(task_id="tsk_x", ref="r3"), {"op": "cancel", "task_id": "tsk_x", "ref": "r3"}),
    (PingOp(ref="r4"), {"op": "ping", "ref": "r4"}),
]
SERVER_MESSAGES: list[tuple[ServerMessage, dict[str, Any]]] = [
    (Accepted(task_id="tsk_x", ref="r1"), {"op": "accepted", "task_id": "tsk_x", "ref": "r1"}),
    (Accepted(task_id="tsk_x"), {"op": "accepted", "task_id": "tsk_x"}),
    (
        Subscribed(task_id="tsk_x", ref="r2"),
        {"op": "subscribed", "task_id": "tsk_x", "ref": "r2"},
    ),
    (Ok(ref="r3"), {"op": "ok", "ref": "r3"}),
    (Ok(), {"op": "ok"}),
    (Pong(ref="r4"), {"op": "pong", "ref": "r4"}),
    (
        Authenticated(principal="frontend", ref="a"),
        {"op": "authenticated", "principal": "frontend", "ref": "a"},
    ),
    (Authenticated(principal="frontend"), {"op": "authenticated", "principal": "frontend"}),
    (EventMessage(event=EVENT), {"op": "event", "event": msgspec.to_builtins(EVENT)}),
    (Ended(task_id="tsk_1", last_seq=9), {"op": "ended", "task_id": "tsk_1", "last_seq": 9}),
    (
        Ended(session_id="ses_1", last_seq=4),
        {"op": "ended", "last_seq": 4, "session_id": "ses_1"},
    ),
    (
        Subscribed(session_id="ses_x", ref="r6", status="open", last_seq=2),
        {"op": "subscribed", "session_id": "ses_x", "ref": "r6", "status": "open", "last_seq": 2},
    ),
    (
        SessionEventMessage(event=SESSION_EVENT),
        {"op": "session_event", "event": msgspec.to_builtins(SESSION_EVENT)},
    ),
    (Heartbeat(time="T"), {"op": "heartbeat", "time": "T"}),
    (
        ErrorMessage(error=ErrorBody(code="FORBIDDEN", message="no"), ref="r1"),
        {
            "op": "error",
            "error": {"code": "FORBIDDEN", "message": "no", "details": {}, "request_id": None},
            "ref": "r1",
        },
    ),
]


def invalid(frame: str | bytes) -> InvalidClientMessage:
    with pytest.raises(InvalidClientMessage) as info:
        decode_client_message(frame)
    return info.value


def test_subprotocol() -> None:
    """The WebSocket subprotocol is skillwire.v1."""
    assert SUBPROTOCOL == "skillwire.v1"


# -- round-trips ---------------------------------------------------------------------------
@pytest.mark.parametrize(("message", "wire"), CLIENT_MESSAGES, ids=lambda v: type(v).__name__)
def test_client_message_round_trips(message: ClientMessage, wire: dict[str, Any]) -> None:
    """Each client op encodes to its JSON shape and decodes back to an equal message."""
    frame = encode_client_message(message)
    assert json.loads(frame) == wire
    assert decode_client_message(frame) == message
    assert decode_client_message(frame.decode()) == message


@pytest.mark.parametrize(("message", "wire"), SERVER_MESSAGES, ids=lambda v: type(v).__name__)
def test_server_message_round_trips(message: ServerMessage, wire: dict[str, Any]) -> None:
    """Each server op encodes to its JSON shape (op first) and decodes back to an equal one."""
    frame = encode_server_message(message)
    assert json.loads(frame) == wire
    assert frame.startswith(b'{"op":"')
    assert decode_server_message(frame) == message


def test_client_message_defaults() -> None:
    """Optional fields default: no ref, after 0, no snapshot, no webhook, empty metadata."""
    subscribe = decode_client_message('{"op":"subscribe","task_id":"t"}')
    assert subscribe == SubscribeOp(task_id="t", ref=None, after=0, snapshot=False)
    call = decode_client_message('{"op":"call","app":"a","skill":"s","requests":[]}')
    assert call == CallOp(app="a", skill="s", requests=[], ref=None, webhook_url=None, metadata={})


@pytest.mark.parametrize(
    "frame",
    [
        '{"op":"subscribe","ref":"r"}',
        '{"op":"subscribe","ref":"r","task_id":"t","session_id":"s"}',
        '{"op":"unsubscribe","ref":"r"}',
        '{"op":"unsubscribe","ref":"r","task_id":"t","session_id":"s"}',
    ],
)
def test_subscribe_names_exactly_one_of_task_and_session(frame: str) -> None:
    """A subscribe or unsubscribe with neither or both ids is a VALIDATION_ERROR (ref kept)."""
    with pytest.raises(InvalidClientMessage) as caught:
        decode_client_message(frame)
    assert caught.value.error.code == "VALIDATION_ERROR"
    assert caught.value.ref == "r"


def test_client_messages_tolerate_unknown_fields() -> None:
    """A client frame with extra fields (a newer client's) still decodes."""
    frame = '{"op":"ping","ref":"r","trace":{"id":1},"v":2}'
    assert decode_client_message(frame) == PingOp(ref="r")


def test_server_messages_tolerate_unknown_fields() -> None:
    """A server frame with extra fields (a newer server's) still decodes, nested ones too."""
    event = msgspec.to_builtins(EVENT) | {"trace": "x"}
    frame = json.dumps({"op": "event", "event": event, "shard": 3})
    assert decode_server_message(frame) == EventMessage(event=EVENT)


def test_decode_server_message_rejects_an_unknown_op() -> None:
    """A server frame with an op the client does not know raises msgspec's ValidationError."""
    with pytest.raises(msgspec.ValidationError):
        decode_server_message('{"op":"exploded"}')


def test_decode_server_message_rejects_an_unknown_event_type() -> None:
    """An event op whose event type is unknown fails to decode."""
    event = msgspec.to_builtins(EVENT) | {"type": "task.exploded"}
    with pytest.raises(msgspec.ValidationError, match=r"\$\.event\.type"):
        decode_server_message(json.dumps({"op": "event", "event": event}))


# -- decode_client_message errors ----------------------------------------------------------
@pytest.mark.parametrize(
    "frame", ["not json", "{", b"\xff", "", '{"op":"ping"} x', b'{"op": "ping", "ref": "\xff"}']
)
def test_non_json_frame_is_bad_request(frame: str | bytes) -> None:
    """A frame that is not JSON is a BadRequest with no ref."""
    exc = invalid(frame)
    assert isinstance(exc.error, BadRequest)
    assert exc.error.code == "BAD_REQUEST"
    assert exc.ref is None
    assert str(exc) == exc.error.message


@pytest.mark.parametrize("frame", ['[{"op":"ping","ref":"r"}]', "42", '"ping"', "null"])
def test_non_object_frame_is_bad_request(frame: str) -> None:
    """A JSON array or scalar is a BadRequest with no ref."""
    exc = invalid(frame)
    assert isinstance(exc.error, BadRequest)
    assert exc.ref is None


@pytest.mark.parametrize("op", ["explode", "PING", "event", "", None, 1, [], {}, ["ping"]])
def test_unknown_op_is_bad_request_and_keeps_ref(op: Any) -> None:
    """An unknown, missing or non-string op is a BadRequest naming ``op``; the ref is kept."""
    exc = invalid(json.dumps({"op": op, "ref": "r9"}))
    assert type(exc.error) is BadRequest
    assert exc.error.details["field"] == "op"
    assert "ping" in exc.error.details["allowed"]
    assert exc.ref == "r9"


def test_frame_without_op_is_bad_request() -> None:
    """A JSON object without an op is a BadRequest."""
    exc = invalid('{"ref":"r1","task_id":"t"}')
    assert type(exc.error) is BadRequest
    assert exc.ref == "r1"


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        ({"op": "subscribe", "ref": "r1"}, "task_id"),
        ({"op": "auth", "ref": "r1"}, "token"),
        ({"op": "call", "ref": "r1", "app": "demo", "requests": []}, "skill"),
        ({"op": "cancel", "ref": "r1"}, "task_id"),
    ],
)
def test_missing_field_is_a_validation_error_naming_it(frame: dict[str, Any], field: str) -> None:
    """A missing required field gives VALIDATION_ERROR with details.field, and the ref kept."""
    exc = invalid(json.dumps(frame))
    assert isinstance(exc.error, ValidationError)
    assert exc.error.details["field"] == field
    assert field in exc.error.details["constraint"]
    assert exc.ref == "r1"


@pytest.mark.parametrize(
    ("extra", "field", "constraint"),
    [
        ({"after": "x"}, "after", "Expected `int`, got `str`"),
        ({"after": 1.5}, "after", "Expected `int`, got `float`"),
        ({"after": -1}, "after", "Expected `int` >= 0"),
        ({"snapshot": "yes"}, "snapshot", "Expected `bool`, got `str`"),
        ({"task_id": 7}, "task_id", "Expected `str | null`, got `int`"),
        ({"session_id": 7}, "session_id", "Expected `str | null`, got `int`"),
    ],
)
def test_wrong_typed_field_is_a_validation_error_naming_it(
    extra: dict[str, Any], field: str, constraint: str
) -> None:
    """A subscribe with a wrong-typed or negative field names that field and the constraint."""
    frame = {"op": "subscribe", "ref": "r2", "task_id": "t"} | extra
    exc = invalid(json.dumps(frame))
    assert isinstance(exc.error, ValidationError)
    assert exc.error.details == {"field": field, "constraint": constraint}
    assert exc.error.message == f"invalid field `{field}`: {constraint}"
    assert exc.ref == "r2"


def test_call_with_bad_request_items_names_the_item() -> None:
    """A call whose requests are not objects names ``requests[i]``."""
    exc = invalid('{"op":"call","ref":"c","app":"a","skill":"s","requests":[{},"x"]}')
    assert isinstance(exc.error, ValidationError)
    assert exc.error.details["field"] == "requests[1]"


@pytest.mark.parametrize("ref", [1, None, ["r"], {"r": 1}])
def test_non_string_ref_is_not_echoed(ref: Any) -> None:
    """A ref that is not a string is not kept on the error (it could not be replied to)."""
    exc = invalid(json.dumps({"op": "explode", "ref": ref}))
    assert exc.ref is None


def test_non_string_ref_on_a_known_op_is_a_validation_error() -> None:
    """A known op with a numeric ref fails validation naming ``ref``."""
    exc = invalid('{"op":"ping","ref":5}')
    assert isinstance(exc.error, ValidationError)
    assert exc.error.details["field"] == "ref"
    assert exc.ref is None


@pytest.mark.parametrize("opener", ["[", '{"op":', '{"a":['])
def test_deeply_nested_frame_is_bad_request(opener: str) -> None:
    """A frame nested too deeply is a BadRequest, not a RecursionError."""
    exc = invalid(opener * 100_000)
    assert isinstance(exc.error, BadRequest)


def test_lone_surrogate_text_is_bad_request() -> None:
    """Text that cannot be UTF-8 (a lone surrogate) is a BadRequest, not a UnicodeError."""
    assert isinstance(invalid('{"op":"ping","ref":"\ud800"}').error, BadRequest)


# -- property: nothing but InvalidClientMessage escapes ------------------------------------
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["ping", "auth", "call", "subscribe", "cancel", "tsk_x", ""])
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
FIELD_NAMES = (
    st.sampled_from(
        ["op", "ref", "token", "app", "skill", "requests", "webhook_url", "metadata", "task_id"]
    )
    | st.sampled_from(["after", "snapshot"])
    | st.text(max_size=8)
)
OPS = st.sampled_from(["auth", "call", "subscribe", "unsubscribe", "cancel", "ping"]) | JSON_VALUES
OBJECTS = st.builds(
    lambda fields, op: {**fields, "op": op} if op is not None else fields,
    st.dictionaries(FIELD_NAMES, JSON_VALUES, max_size=8),
    st.none() | OPS,
)


def decode_or_invalid(frame: str | bytes) -> None:
    """Decode ``frame``; anything but a message or an InvalidClientMessage fails the test."""
    try:
        message: object = decode_client_message(frame)
    except InvalidClientMessage as exc:
        message = exc
    if isinstance(message, InvalidClientMessage):
        assert message.ref is None or isinstance(message.ref, str)
        assert message.error.code in {"BAD_REQUEST", "VALIDATION_ERROR"}
    else:
        assert isinstance(
            message, AuthOp | CallOp | SubscribeOp | UnsubscribeOp | CancelOp | PingOp
        )


@settings(max_examples=300)
@given(OBJECTS)
def test_arbitrary_json_objects_decode_or_raise_invalid_client_message(obj: Any) -> None:
    """Any JSON object is either a client message or an InvalidClientMessage, nothing else."""
    decode_or_invalid(json.dumps(obj))


@settings(max_examples=300)
@given(JSON_VALUES)
def test_arbitrary_json_values_decode_or_raise_invalid_client_message(value: Any) -> None:
    """Any JSON value (also arrays and scalars) never raises anything but InvalidClientMessage."""
    decode_or_invalid(json.dumps(value))


@settings(max_examples=300)
@given(
    st.text()
    | st.tuples(st.text(), st.characters(categories=["Cs"]), st.text()).map("".join)
    | JSON_VALUES.map(json.dumps).map(lambda frame: frame[: len(frame) // 2])
)
def test_arbitrary_text_raises_only_invalid_client_message(text: str) -> None:
    """Any text frame, surrogates included, never raises anything but InvalidClientMessage."""
    decode_or_invalid(text)


@settings(max_examples=300)
@given(st.binary())
def test_arbitrary_bytes_raise_only_invalid_client_message(data: bytes) -> None:
    """Any bytes frame never raises anything but InvalidClientMessage."""
    decode_or_invalid(data)
