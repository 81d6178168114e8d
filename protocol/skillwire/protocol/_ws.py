"""WebSocket messages (subprotocol ``skillwire.v1``): a tagged union on ``op``.

Client messages are decoded here, with errors that name the offending field; server
messages are encoded once. Inbound messages tolerate unknown fields.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from ._codec import _field_and_constraint
from ._errors import BadRequest, SkillwireError, ValidationError
from ._models import ErrorBody, Event, SessionEvent

__all__ = [
    "SUBPROTOCOL",
    "Accepted",
    "AuthOp",
    "Authenticated",
    "CallOp",
    "CancelOp",
    "ClientMessage",
    "Ended",
    "ErrorMessage",
    "EventMessage",
    "Heartbeat",
    "InvalidClientMessage",
    "Ok",
    "PingOp",
    "Pong",
    "ServerMessage",
    "SessionEventMessage",
    "SubscribeOp",
    "Subscribed",
    "UnsubscribeOp",
    "decode_client_message",
    "decode_server_message",
    "encode_client_message",
    "encode_server_message",
]

SUBPROTOCOL = "skillwire.v1"
NonNegative = Annotated[int, msgspec.Meta(ge=0)]


class AuthOp(msgspec.Struct, tag_field="op", tag="auth"):
    token: str
    ref: str | None = None


class CallOp(msgspec.Struct, tag_field="op", tag="call"):
    app: str
    skill: str
    requests: list[dict[str, Any]]
    ref: str | None = None
    webhook_url: str | None = None
    metadata: dict[str, Any] = {}
    session_id: str | None = None
    version: str = "1"  # as in an HTTP call's body: any other is UNSUPPORTED_VERSION


class SubscribeOp(msgspec.Struct, tag_field="op", tag="subscribe"):
    """Follow a task or a session: exactly one of ``task_id`` and ``session_id``."""

    task_id: str | None = None
    ref: str | None = None
    after: NonNegative = 0
    snapshot: bool = False
    session_id: str | None = None


class UnsubscribeOp(msgspec.Struct, tag_field="op", tag="unsubscribe"):
    """Stop following a task or a session: exactly one of ``task_id`` and ``session_id``."""

    task_id: str | None = None
    ref: str | None = None
    session_id: str | None = None


class CancelOp(msgspec.Struct, tag_field="op", tag="cancel"):
    task_id: str
    ref: str | None = None


class PingOp(msgspec.Struct, tag_field="op", tag="ping"):
    ref: str | None = None


ClientMessage = AuthOp | CallOp | SubscribeOp | UnsubscribeOp | CancelOp | PingOp


class Accepted(msgspec.Struct, tag_field="op", tag="accepted", omit_defaults=True):
    task_id: str
    ref: str | None = None


class Subscribed(msgspec.Struct, tag_field="op", tag="subscribed", omit_defaults=True):
    """``status`` and ``last_seq`` (an extension of API v1) say where the task stood, so a
    client resuming past the end of a finished task knows that nothing more will come."""

    task_id: str | None = None
    ref: str | None = None
    status: str | None = None
    last_seq: int | None = None
    session_id: str | None = None


class Ok(msgspec.Struct, tag_field="op", tag="ok", omit_defaults=True):
    ref: str | None = None


class Pong(msgspec.Struct, tag_field="op", tag="pong", omit_defaults=True):
    ref: str | None = None


class Authenticated(msgspec.Struct, tag_field="op", tag="authenticated", omit_defaults=True):
    principal: str
    ref: str | None = None


class EventMessage(msgspec.Struct, tag_field="op", tag="event"):
    event: Event


class SessionEventMessage(msgspec.Struct, tag_field="op", tag="session_event"):
    event: SessionEvent


class Ended(msgspec.Struct, tag_field="op", tag="ended", omit_defaults=True):
    """A subscription ended without sending its task's terminal event, because its ``after``
    was at or past it: the task finished, ``last_seq`` is its terminal event's seq. For a
    session (``session_id`` instead of ``task_id``) the same, with ``session.closed``."""

    task_id: str | None = None
    last_seq: int = 0
    session_id: str | None = None


class Heartbeat(msgspec.Struct, tag_field="op", tag="heartbeat"):
    time: str


class ErrorMessage(msgspec.Struct, tag_field="op", tag="error"):
    error: ErrorBody
    ref: str | None = None


ServerMessage = (
    Accepted
    | Subscribed
    | Ok
    | Pong
    | Authenticated
    | EventMessage
    | SessionEventMessage
    | Ended
    | Heartbeat
    | ErrorMessage
)

_CLIENT_OPS = {"auth", "call", "subscribe", "unsubscribe", "cancel", "ping"}
_encoder = msgspec.json.Encoder()
_any_decoder = msgspec.json.Decoder()
_server_decoder: msgspec.json.Decoder[ServerMessage] = msgspec.json.Decoder(ServerMessage)


class InvalidClientMessage(Exception):
    """A client frame that could not be decoded: carries the error and the frame's ``ref``."""

    def __init__(self, error: SkillwireError, ref: str | None) -> None:
        super().__init__(error.message)
        self.error = error
        self.ref = ref


def _validation_error(exc: msgspec.ValidationError) -> ValidationError:
    field, constraint = _field_and_constraint(exc)
    return ValidationError(
        f"invalid field `{field}`: {constraint}" if field else constraint,
        details={"field": field, "constraint": constraint},
    )


def decode_client_message(frame: str | bytes) -> ClientMessage:
    """Decode one client frame, or raise ``InvalidClientMessage`` saying what is wrong."""
    try:
        raw = _any_decoder.decode(frame)
    except (msgspec.DecodeError, UnicodeError) as exc:  # UnicodeError: invalid UTF-8 in a string
        raise InvalidClientMessage(BadRequest(f"frame is not valid JSON: {exc}"), None) from exc
    except RecursionError as exc:
        raise InvalidClientMessage(BadRequest("frame is nested too deeply"), None) from exc
    if not isinstance(raw, dict):
        raise InvalidClientMessage(BadRequest("a message must be a JSON object"), None)
    ref = raw.get("ref")
    ref = ref if isinstance(ref, str) else None
    op = raw.get("op")
    if not isinstance(op, str) or op not in _CLIENT_OPS:
        raise InvalidClientMessage(
            BadRequest(
                f"unknown op {op!r}", details={"field": "op", "allowed": sorted(_CLIENT_OPS)}
            ),
            ref,
        )
    try:
        message: ClientMessage = msgspec.convert(raw, ClientMessage)
    except msgspec.ValidationError as exc:
        raise InvalidClientMessage(_validation_error(exc), ref) from exc
    if isinstance(message, SubscribeOp | UnsubscribeOp) and (message.task_id is None) == (
        message.session_id is None
    ):
        raise InvalidClientMessage(
            ValidationError(
                f"{op} names exactly one of `task_id` and `session_id`",
                details={"field": "task_id", "constraint": "exactly one of task_id, session_id"},
            ),
            ref,
        )
    return message


def encode_client_message(message: ClientMessage) -> bytes:
    return _encoder.encode(message)


def encode_server_message(message: ServerMessage) -> bytes:
    return _encoder.encode(message)


def decode_server_message(frame: str | bytes) -> ServerMessage:
    return _server_decoder.decode(frame)
