"""Codecs (``_codec.py``): JSON in and out, validation errors that name the field."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from skillwire.protocol import (
    BadRequest,
    CallBody,
    ErrorEnvelope,
    Event,
    EventType,
    TaskStatus,
    ValidationError,
    decode_event,
    decode_json,
    decode_task,
    encode,
    error_envelope,
    lifecycle,
    to_builtins,
    validate,
)


class EchoInput(msgspec.Struct):
    text: str
    fail: bool = False


class Nested(msgspec.Struct):
    items: list[EchoInput]


# -- validate ------------------------------------------------------------------------------
def test_validate_returns_the_struct() -> None:
    """Valid input converts to the requested type."""
    assert validate({"text": "a"}, EchoInput) == EchoInput(text="a")


@pytest.mark.parametrize(
    ("obj", "prefix", "field", "constraint"),
    [
        ({"text": 1}, "requests[0]", "requests[0].text", "Expected `str`, got `int`"),
        ({"text": "a", "fail": "yes"}, "requests[3]", "requests[3].fail", "Expected `bool`"),
        ({"text": None}, "", "text", "Expected `str`, got `null`"),
        ([], "requests[1]", "requests[1]", "Expected `object`, got `array`"),
    ],
)
def test_validate_names_the_field_and_the_constraint(
    obj: Any, prefix: str, field: str, constraint: str
) -> None:
    """A wrong value raises ValidationError with the prefixed path and the constraint."""
    with pytest.raises(ValidationError) as info:
        validate(obj, EchoInput, prefix=prefix)
    error = info.value
    assert error.details["field"] == field
    assert error.details["constraint"].startswith(constraint)
    assert error.message == f"invalid `{field}`: {error.details['constraint']}"
    assert (error.status, error.code) == (422, "VALIDATION_ERROR")
    assert isinstance(error.__cause__, msgspec.ValidationError)


def test_validate_names_a_missing_field_under_its_prefix() -> None:
    """A missing field is named by its own path (``requests[0].text``), not its parent's."""
    with pytest.raises(ValidationError) as info:
        validate({}, EchoInput, prefix="requests[0]")
    assert info.value.details == {
        "field": "requests[0].text",
        "constraint": "Object missing required field `text`",
    }


def test_validate_names_a_missing_top_level_field() -> None:
    """A call body without ``requests`` names ``requests`` (not an empty field)."""
    with pytest.raises(ValidationError) as info:
        validate({"metadata": {}}, CallBody)
    assert info.value.details["field"] == "requests"
    assert "missing required field" in info.value.details["constraint"]


def test_validate_names_a_missing_nested_field() -> None:
    """A field missing from a list item is named with the item's index."""
    with pytest.raises(ValidationError) as info:
        validate({"items": [{"text": "a"}, {}]}, Nested)
    assert info.value.details["field"] == "items[1].text"


@pytest.mark.parametrize(
    ("body", "field", "constraint"),
    [
        ({"requests": []}, "requests", "length >= 1"),
        ({"requests": [1]}, "requests[0]", "Expected `object`"),
        ({"requests": "text"}, "requests", "Expected `array`"),
        ({"requests": [{}], "version": 1}, "version", "Expected `str`"),
        ({"requests": [{}], "metadata": "x"}, "metadata", "Expected `object`"),
    ],
)
def test_validate_call_body(body: dict[str, Any], field: str, constraint: str) -> None:
    """Call body errors name the body's own fields and list indexes."""
    with pytest.raises(ValidationError) as info:
        validate(body, CallBody)
    assert info.value.details["field"] == field
    assert constraint in info.value.details["constraint"]


def test_validate_without_a_field_has_a_bare_message() -> None:
    """An error at the root with no prefix names no field and says only the constraint."""
    with pytest.raises(ValidationError) as info:
        validate(42, EchoInput)
    assert info.value.details == {"field": "", "constraint": "Expected `object`, got `int`"}
    assert info.value.message == "Expected `object`, got `int`"


def test_validate_is_strict_unless_told() -> None:
    """Strings are not coerced to numbers or booleans unless ``strict=False``."""
    with pytest.raises(ValidationError):
        validate({"text": "a", "fail": "true"}, EchoInput)
    assert validate({"text": "a", "fail": "true"}, EchoInput, strict=False).fail is True


# -- decode_json ---------------------------------------------------------------------------
@pytest.mark.parametrize("data", [b'{"a": [1, 2.5, null, true]}', '{"a": [1, 2.5, null, true]}'])
def test_decode_json(data: bytes | str) -> None:
    """Bytes or text parse to builtins."""
    assert decode_json(data) == {"a": [1, 2.5, None, True]}


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"{",
        b"{'a': 1}",
        b'{"a": 1,}',
        b"NaN",
        b"\xff\xfe",
        b'{"a":1} trailing',
        "\ud800",
        b'{"a": "\xff"}',  # invalid UTF-8 inside a string
        b'{"a": "\xc3"}',  # a truncated sequence
        b'"\xed\xa0\x80"',  # a surrogate encoded in UTF-8
        b'{"\xe9": 1}',  # inside a key
    ],
)
def test_decode_json_rejects_malformed_json(data: bytes | str) -> None:
    """Malformed JSON raises BadRequest (400), never a msgspec or Unicode error."""
    with pytest.raises(BadRequest) as info:
        decode_json(data)
    assert (info.value.status, info.value.code) == (400, "BAD_REQUEST")
    assert info.value.message.startswith("malformed JSON")


@pytest.mark.parametrize("opener", [b"[", b'{"a":'])
def test_decode_json_rejects_deep_nesting(opener: bytes) -> None:
    """JSON nested deeper than the decoder allows is a BadRequest, not a RecursionError."""
    with pytest.raises(BadRequest):
        decode_json(opener * 100_000)


# -- typed decoders and encode -------------------------------------------------------------
def test_decode_task_and_event_round_trip() -> None:
    """decode_task and decode_event read back what encode wrote."""
    task, event = lifecycle.new_task("tsk_x", "demo", "echo", 2, {}, "T0")
    assert decode_task(encode(task)) == task
    assert decode_event(encode(event)) == event


def test_decode_task_rejects_wrong_types() -> None:
    """decode_task raises msgspec's ValidationError on a bad Task."""
    task, _ = lifecycle.new_task("tsk_x", "demo", "echo", 1, {}, "T0")
    raw = to_builtins(task)
    raw["status"] = "done"
    with pytest.raises(msgspec.ValidationError):
        decode_task(encode(raw))


def test_to_builtins_gives_plain_values() -> None:
    """to_builtins turns Structs and enums into dicts and strings."""
    event = Event(task_id="t", seq=1, type=EventType.TASK_QUEUED, time="T", data={})
    assert to_builtins(event) == {
        "task_id": "t",
        "seq": 1,
        "type": "task.queued",
        "time": "T",
        "data": {},
    }
    assert type(to_builtins(TaskStatus.RUNNING)) is str


def test_encode_is_compact_json() -> None:
    """encode writes compact JSON bytes with no spaces or newlines."""
    assert encode({"a": [1, "x\ny"], "b": None}) == b'{"a":[1,"x\\ny"],"b":null}'


# -- error_envelope ------------------------------------------------------------------------
def test_error_envelope_bytes() -> None:
    """error_envelope writes {"error": {code, message, details, request_id}}."""
    body = error_envelope("NOT_FOUND", "task not found", {}, None)
    assert body == (
        b'{"error":{"code":"NOT_FOUND","message":"task not found","details":{},"request_id":null}}'
    )


def test_error_envelope_with_details_and_request_id() -> None:
    """Details and the request id go inside the envelope and decode back."""
    body = error_envelope("VALIDATION_ERROR", "bad", {"field": "requests[0].text"}, "req-7")
    envelope = msgspec.json.decode(body, type=ErrorEnvelope)
    assert envelope.error.code == "VALIDATION_ERROR"
    assert envelope.error.details == {"field": "requests[0].text"}
    assert envelope.error.request_id == "req-7"


def test_encode_escapes_unicode_line_separators() -> None:
    """U+0085, U+2028 and U+2029 are escaped (valid JSON, and no line split in them)."""
    text = "a\x85b\u2028c\u2029d\u2013e"
    data = encode({"text": text})
    assert data == b'{"text":"a\\u0085b\\u2028c\\u2029d\xe2\x80\x93e"}'
    assert len(data.decode().splitlines()) == 1
    assert decode_json(data) == {"text": text}
