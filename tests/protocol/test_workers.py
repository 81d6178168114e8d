"""Remote worker messages: decoding what a worker sends, encoding what it receives."""

from __future__ import annotations

import json

import pytest

from skillwire.protocol import (
    CancelWork,
    InvalidWorkerMessage,
    SkillDeclaration,
    SkillMode,
    Welcome,
    Work,
    WorkCompleted,
    WorkDelta,
    WorkerHello,
    WorkFailed,
    WorkOutput,
    WorkProgress,
    decode_work_message,
    decode_worker_inbound,
    encode_worker_message,
)


def test_hello_decodes_with_its_declarations() -> None:
    """A hello carries its name, concurrency and skills; omitted declaration fields default."""
    hello = decode_worker_inbound(
        '{"op": "hello", "ref": "h", "name": "w", "concurrency": 4,'
        ' "skills": [{"app": "ext", "skill": "up", "mode": "long", "timeout": 5, "extra": 1}]}'
    )
    assert isinstance(hello, WorkerHello)
    assert (hello.ref, hello.name, hello.concurrency) == ("h", "w", 4)
    (skill,) = hello.skills
    assert skill.key == "ext/up"
    assert skill.mode is SkillMode.LONG
    assert skill.input_schema == {"type": "object"}
    assert skill.timeout == 5


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        ('{"op": "progress", "work_id": "w", "progress": 0.5}', WorkProgress),
        ('{"op": "output", "work_id": "w", "output": {"a": 1}}', WorkOutput),
        ('{"op": "delta", "work_id": "w", "output": 0, "field": "text", "append": "x"}', WorkDelta),
        ('{"op": "completed", "work_id": "w", "data": {"usage": {}}}', WorkCompleted),
        ('{"op": "failed", "work_id": "w", "error": {"code": "E", "message": "m"}}', WorkFailed),
    ],
)
def test_work_messages_decode(frame: str, kind: type) -> None:
    """Each WorkerMessage op decodes to its own type, on the socket and on an HTTP stream."""
    assert isinstance(decode_worker_inbound(frame), kind)
    assert isinstance(decode_work_message(frame), kind)


def test_a_stream_line_needs_no_work_id() -> None:
    """An HTTP skill's lines carry no work_id."""
    message = decode_work_message('{"op": "output", "output": 1}')
    assert isinstance(message, WorkOutput)
    assert message.work_id == ""


@pytest.mark.parametrize(
    ("frame", "code", "field"),
    [
        ("not json", "BAD_REQUEST", None),
        ("[1]", "BAD_REQUEST", None),
        ('{"op": "call", "ref": "r"}', "BAD_REQUEST", "op"),
        ('{"op": "progress", "work_id": "w", "progress": 2}', "VALIDATION_ERROR", "progress"),
        ('{"op": "hello", "skills": [{"app": "Bad App", "skill": "x"}]}', "VALIDATION_ERROR", None),
        ('{"op": "hello", "skills": [], "concurrency": 0}', "VALIDATION_ERROR", "concurrency"),
    ],
)
def test_invalid_frames_name_what_is_wrong(frame: str, code: str, field: str | None) -> None:
    """A frame that is not a valid worker message raises with the error to send back."""
    with pytest.raises(InvalidWorkerMessage) as caught:
        decode_worker_inbound(frame)
    assert caught.value.error.code == code
    if field is not None:
        assert caught.value.error.details["field"] == field


def test_an_invalid_frame_keeps_its_ref_and_work_id() -> None:
    """The op error for a bad frame can name the frame's ref and work_id."""
    with pytest.raises(InvalidWorkerMessage) as caught:
        decode_worker_inbound('{"op": "output", "ref": "r", "work_id": "w"}')
    assert (caught.value.ref, caught.value.work_id) == ("r", "w")


def test_server_messages_encode_as_the_contract_says() -> None:
    """welcome, work and cancel are the JSON objects API.md shows."""
    work = Work(work_id="w", task_id="t", index=0, app="a", skill="s", input={"x": 1}, attempt=2)
    assert json.loads(encode_worker_message(work)) == {
        "op": "work",
        "work_id": "w",
        "task_id": "t",
        "index": 0,
        "app": "a",
        "skill": "s",
        "input": {"x": 1},
        "attempt": 2,
    }
    assert json.loads(encode_worker_message(Welcome(worker_id="wkr", ref="h"))) == {
        "op": "welcome",
        "worker_id": "wkr",
        "ref": "h",
    }
    assert json.loads(encode_worker_message(CancelWork(work_id="w"))) == {
        "op": "cancel",
        "work_id": "w",
    }


def test_same_contract_compares_schema_and_mode_only() -> None:
    """Two declarations agree when schema and mode match, whatever their descriptions."""
    first = SkillDeclaration(app="a", skill="s", input_schema={"type": "object"}, description="x")
    assert first.same_contract(SkillDeclaration(app="a", skill="s", description="y"))
    assert not first.same_contract(SkillDeclaration(app="a", skill="s", mode=SkillMode.LONG))
    assert not first.same_contract(
        SkillDeclaration(app="a", skill="s", input_schema={"type": "string"})
    )
