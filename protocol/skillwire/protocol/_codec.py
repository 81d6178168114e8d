"""Encoders and decoders, created once and reused (msgspec's fast path)."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

from ._errors import BadRequest, ValidationError
from ._models import ErrorBody, ErrorEnvelope, Event, Task

__all__ = [
    "decode_event",
    "decode_json",
    "decode_task",
    "encode",
    "error_envelope",
    "to_builtins",
    "validate",
]

T = TypeVar("T")

_encoder = msgspec.json.Encoder()
_any_decoder = msgspec.json.Decoder()
_task_decoder = msgspec.json.Decoder(Task)
_event_decoder = msgspec.json.Decoder(Event)
_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]*)`$")


# Line separators that JSON leaves raw (U+0085, U+2028, U+2029), as UTF-8. Escaped, so that a
# reader that splits lines the Unicode way (str.splitlines, httpx's iter_lines) never cuts an
# SSE frame or an NDJSON line in two: a streamed answer may hold any character. Inside JSON they
# can only sit in strings, and UTF-8 is self-synchronising, so replacing the bytes is exact.
_RAW_SEPARATORS = (
    (b"\xc2\x85", b"\\u0085"),
    (b"\xe2\x80\xa8", b"\\u2028"),
    (b"\xe2\x80\xa9", b"\\u2029"),
)


def encode(obj: Any) -> bytes:
    """JSON bytes of any wire object or builtin (Unicode line separators escaped)."""
    data = _encoder.encode(obj)
    # ASCII JSON (most of it) holds no separator: one C pass instead of two substring scans,
    # which cost four times the encoding itself on a small event.
    if data.isascii():
        return data
    if b"\xc2\x85" in data or b"\xe2\x80" in data:
        for raw, escaped in _RAW_SEPARATORS:
            data = data.replace(raw, escaped)
    return data


def decode_json(data: bytes | str) -> Any:
    """Parse JSON, raising ``BadRequest`` (400) when it is malformed."""
    try:
        return _any_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"malformed JSON: {exc}") from exc
    except RecursionError as exc:
        raise BadRequest("malformed JSON: nested too deeply") from exc
    except UnicodeError as exc:  # invalid UTF-8 inside a string, or a str with lone surrogates
        raise BadRequest(f"malformed JSON: {exc}") from exc


def decode_task(data: bytes | str) -> Task:
    return _task_decoder.decode(data)


def decode_event(data: bytes | str) -> Event:
    return _event_decoder.decode(data)


def to_builtins(obj: Any) -> Any:
    return msgspec.to_builtins(obj)


def validate(obj: Any, type_: type[T], *, prefix: str = "", strict: bool = True) -> T:
    """Convert decoded JSON to ``type_`` or raise ``ValidationError`` naming the field.

    ``prefix`` is prepended to the field path (``requests[0]``), so the client learns
    which item of a list was wrong.
    """
    try:
        return msgspec.convert(obj, type_, strict=strict)
    except msgspec.ValidationError as exc:
        field, constraint = _field_and_constraint(exc, prefix)
        raise ValidationError(
            f"invalid `{field}`: {constraint}" if field else constraint,
            details={"field": field, "constraint": constraint},
        ) from exc


def _field_and_constraint(exc: msgspec.ValidationError, prefix: str = "") -> tuple[str, str]:
    """The field path (``requests[0].text``) and the constraint a msgspec error names.

    A missing field is named by its own path, not its parent's (msgspec reports it at the
    object that lacks it).
    """
    text = str(exc)
    match = _PATH.search(text)
    path = match.group("path") if match else ""
    constraint = text[: match.start()] if match else text
    missing = _MISSING.match(constraint)
    if missing:
        path += "." + missing.group("name")
    return (prefix + path).lstrip("."), constraint


def error_envelope(
    code: str, message: str, details: dict[str, Any], request_id: str | None
) -> bytes:
    return _encoder.encode(
        ErrorEnvelope(ErrorBody(code=code, message=message, details=details, request_id=request_id))
    )
