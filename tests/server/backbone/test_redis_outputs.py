"""APPEND's arguments for a ``request.delta`` (``backbone/redis/_outputs.py``), in memory."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from skillwire.protocol import Delta, EventType, encode
from skillwire.server.backbone.redis._outputs import group_args


def by_conversion(data: Any) -> tuple[bytes, bytes, bytes, bytes]:
    """The arguments as the full conversion to ``Delta`` makes them."""
    try:
        delta = msgspec.convert(data, Delta)
    except msgspec.ValidationError as exc:
        return encode(data), b"", b"", f"request.delta: {exc}".encode()
    return encode(data), b"%d" % delta.output, delta.field.encode(), encode(delta.append)[1:-1]


@pytest.mark.parametrize(
    "data",
    [
        {"output": 0, "field": "text", "append": "word "},
        {"output": 12, "field": "arguments", "append": 'é"\\\u2028\n'},
        {"output": 0, "field": "text", "append": ""},
        {"output": 0, "field": "text", "append": "x", "extra": 1},
        {"append": "x", "field": "text", "output": 1},
        {"output": -1, "field": "text", "append": "x"},
        {"output": True, "field": "text", "append": "x"},
        {"output": 1.0, "field": "text", "append": "x"},
        {"output": 0, "field": 3, "append": "x"},
        {"output": 0, "field": "text", "append": None},
        {"output": 0, "field": "text"},
        [0, "text", "x"],
        "x",
    ],
)
def test_a_deltas_arguments_are_those_of_its_conversion(data: Any) -> None:
    """A delta's APPEND arguments (event JSON, output, field, escaped text, or the refusal)
    are the same with or without the short path a skill's own appends take."""
    assert group_args(EventType.REQUEST_DELTA, data) == by_conversion(data)
