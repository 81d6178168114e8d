"""Wire models (``_models.py``): JSON round-trips, rejection of bad values, schema tolerance."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
import pytest

from skillwire.protocol import (
    AppSkills,
    AppsList,
    CallBody,
    Delta,
    ErrorBody,
    ErrorDetail,
    ErrorEnvelope,
    Event,
    EventType,
    HealthStatus,
    ReadyStatus,
    RequestState,
    RequestStatus,
    Skill,
    SkillMode,
    Task,
    TaskLinks,
    TaskList,
    TaskStatus,
    Ticket,
    WebhookPayload,
    decode_event,
    decode_task,
    encode,
    to_builtins,
)

T = TypeVar("T")
NOW = "2026-11-23T12:00:00.123456Z"
LATER = "2026-11-23T12:00:01.000000Z"
TASK_ID = "tsk_AYvP5Wh7hEuPHek5h6SD4Cg_XEcRnBYO"


def make_task(**overrides: Any) -> Task:
    fields: dict[str, Any] = {
        "task_id": TASK_ID,
        "app": "demo",
        "skill": "echo",
        "status": TaskStatus.PARTIAL,
        "created_at": NOW,
        "updated_at": LATER,
        "finished_at": LATER,
        "requests": [
            RequestState(
                index=0,
                status=RequestStatus.COMPLETED,
                progress=1.0,
                output=[{"type": "text", "text": "hello"}],
            ),
            RequestState(
                index=1,
                status=RequestStatus.FAILED,
                progress=0.5,
                error=ErrorDetail(code="SKILL_ERROR", message="boom", details={"k": 1}),
            ),
        ],
        "previews": [{"type": "text", "text": "hello"}],
        "error": None,
        "last_seq": 7,
        "metadata": {"any": ["json", 1, None]},
        "links": TaskLinks(
            self=f"/api/v1/tasks/{TASK_ID}", events=f"/api/v1/tasks/{TASK_ID}/events"
        ),
    }
    fields.update(overrides)
    return Task(**fields)


def make_skill() -> Skill:
    return Skill(
        app="demo",
        skill="echo",
        description="Echo the text back.",
        mode=SkillMode.QUICK,
        input_schema={"type": "object", "properties": {"text": {"type": "string"}}},
        max_requests=5,
    )


def roundtrip(obj: T, type_: type[T]) -> T:
    return msgspec.json.decode(encode(obj), type=type_)


def as_json(obj: Any) -> dict[str, Any]:
    decoded: dict[str, Any] = msgspec.json.decode(encode(obj))
    return decoded


# -- Task ----------------------------------------------------------------------------------
def test_task_round_trips() -> None:
    """A Task encoded to JSON decodes back to an equal Task."""
    task = make_task()
    assert decode_task(encode(task)) == task


def test_task_json_has_the_contract_fields() -> None:
    """A Task's JSON has exactly the fields of API.md, nulls included."""
    data = as_json(make_task(finished_at=None))
    assert set(data) == {
        "task_id",
        "app",
        "skill",
        "status",
        "created_at",
        "updated_at",
        "finished_at",
        "requests",
        "previews",
        "error",
        "last_seq",
        "metadata",
        "links",
        "session_id",
        "parent_task_id",
        "children",
    }
    assert data["finished_at"] is None
    assert data["error"] is None
    assert (data["session_id"], data["parent_task_id"], data["children"]) == (None, None, [])
    assert data["status"] == "partial"
    assert data["links"] == {
        "self": f"/api/v1/tasks/{TASK_ID}",
        "events": f"/api/v1/tasks/{TASK_ID}/events",
    }
    assert set(data["requests"][0]) == {
        "index",
        "status",
        "progress",
        "output",
        "outputs_dropped",
        "result",
        "error",
    }
    assert (data["requests"][0]["outputs_dropped"], data["requests"][0]["result"]) == (0, None)


def test_task_error_round_trips() -> None:
    """A failed Task's error (code, message, details) survives a round-trip."""
    task = make_task(
        status=TaskStatus.FAILED, error=ErrorDetail(code="TIMEOUT", message="slow", details={})
    )
    assert decode_task(encode(task)).error == ErrorDetail(code="TIMEOUT", message="slow")


@pytest.mark.parametrize("status", ["done", "QUEUED", "", 1, None])
def test_task_rejects_an_unknown_status(status: Any) -> None:
    """A Task whose status is not one of the six values fails to decode."""
    data = to_builtins(make_task())
    data["status"] = status
    with pytest.raises(msgspec.ValidationError, match=r"\$\.status"):
        decode_task(encode(data))


def test_request_state_rejects_an_unknown_status() -> None:
    """A request whose status is "partial" (a task-only status) fails to decode."""
    data = to_builtins(make_task())
    data["requests"][0]["status"] = "partial"
    with pytest.raises(msgspec.ValidationError, match=r"\$\.requests\[0\]\.status"):
        decode_task(encode(data))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("last_seq", "7"),
        ("last_seq", 7.5),
        ("requests", {}),
        ("previews", "x"),
        ("metadata", []),
        ("task_id", 1),
        ("links", None),
    ],
)
def test_task_rejects_wrong_types(field: str, value: Any) -> None:
    """A Task field of the wrong JSON type fails to decode, naming the field."""
    data = to_builtins(make_task())
    data[field] = value
    with pytest.raises(msgspec.ValidationError, match=rf"\$\.{field}"):
        decode_task(encode(data))


def test_task_rejects_a_missing_field() -> None:
    """A Task without ``last_seq`` fails to decode (every Task field is required)."""
    data = to_builtins(make_task())
    del data["last_seq"]
    with pytest.raises(msgspec.ValidationError, match="last_seq"):
        decode_task(encode(data))


def test_request_state_defaults() -> None:
    """A new RequestState is queued, at progress 0, with no output and no error."""
    state = RequestState(index=3)
    assert (state.status, state.progress, state.output, state.error) == (
        RequestStatus.QUEUED,
        0.0,
        [],
        None,
    )


def test_request_state_output_lists_are_not_shared() -> None:
    """Two RequestStates never share one default output list."""
    first, second = RequestState(index=0), RequestState(index=1)
    first.output.append("x")
    assert second.output == []


def test_task_without_the_newer_fields_decodes_with_their_defaults() -> None:
    """A Task from an older peer (no outputs_dropped, result, session_id, parent_task_id,
    children) decodes with those fields at their defaults (msgspec's schema evolution)."""
    data = to_builtins(make_task())
    for name in ("session_id", "parent_task_id", "children"):
        del data[name]
    for request in data["requests"]:
        del request["outputs_dropped"], request["result"]
    task = decode_task(encode(data))
    assert (task.session_id, task.parent_task_id, task.children) == (None, None, [])
    assert [(r.outputs_dropped, r.result) for r in task.requests] == [(0, None), (0, None)]


def test_delta_data_round_trips_and_refuses_a_negative_output() -> None:
    """Delta is {"output", "field", "append"}; an output number below 0 is refused."""
    delta = Delta(output=2, field="text", append="lo")
    assert as_json(delta) == {"output": 2, "field": "text", "append": "lo"}
    assert roundtrip(delta, Delta) == delta
    with pytest.raises(msgspec.ValidationError, match="output"):
        msgspec.convert({"output": -1, "field": "text", "append": "x"}, Delta)


# -- Event ---------------------------------------------------------------------------------
@pytest.mark.parametrize("type_", [t for t in EventType if not t.startswith("request.")])
def test_task_event_omits_index(type_: EventType) -> None:
    """A task.* event (index None) has no ``index`` key in its JSON and round-trips."""
    event = Event(task_id=TASK_ID, seq=2, type=type_, time=NOW, data={})
    data = as_json(event)
    assert "index" not in data
    assert data == {"task_id": TASK_ID, "seq": 2, "type": str(type_), "time": NOW, "data": {}}
    assert decode_event(encode(event)) == event


@pytest.mark.parametrize("type_", [t for t in EventType if t.startswith("request.")])
@pytest.mark.parametrize("index", [0, 4])
def test_request_event_carries_index(type_: EventType, index: int) -> None:
    """A request.* event keeps its ``index`` in JSON (also index 0) and round-trips."""
    event = Event(task_id=TASK_ID, seq=3, type=type_, time=NOW, data={"x": 1}, index=index)
    assert as_json(event)["index"] == index
    assert decode_event(encode(event)) == event


def test_event_keeps_empty_data() -> None:
    """``data`` is always present, even when it is an empty object."""
    event = Event(task_id=TASK_ID, seq=1, type=EventType.TASK_QUEUED, time=NOW, data={})
    assert encode(event) == (
        b'{"task_id":"' + TASK_ID.encode() + b'","seq":1,"type":"task.queued",'
        b'"time":"2026-11-23T12:00:00.123456Z","data":{}}'
    )


def test_terminal_event_carries_the_task() -> None:
    """A terminal event's data is the Task's JSON, and decodes back to the same Task."""
    task = make_task(last_seq=8)
    event = Event(task_id=TASK_ID, seq=8, type=EventType.TASK_PARTIAL, time=LATER, data=task)
    decoded = decode_event(encode(event))
    assert decoded.data == to_builtins(task)
    assert msgspec.convert(decoded.data, Task) == task


@pytest.mark.parametrize("type_", ["task.exploded", "request.done", "TASK.QUEUED", "", None])
def test_event_rejects_an_unknown_type(type_: Any) -> None:
    """An Event whose type is not a known EventType fails to decode."""
    raw = {"task_id": TASK_ID, "seq": 1, "type": type_, "time": NOW, "data": {}}
    with pytest.raises(msgspec.ValidationError, match=r"\$\.type"):
        decode_event(encode(raw))


@pytest.mark.parametrize(("field", "value"), [("seq", "1"), ("index", "0"), ("time", 0)])
def test_event_rejects_wrong_types(field: str, value: Any) -> None:
    """An Event with a string seq, a string index or a numeric time fails to decode."""
    raw: dict[str, Any] = {
        "task_id": TASK_ID,
        "seq": 1,
        "type": "request.output",
        "time": NOW,
        "data": {},
        "index": 0,
    }
    raw[field] = value
    with pytest.raises(msgspec.ValidationError, match=rf"\$\.{field}"):
        decode_event(encode(raw))


def test_event_values_are_the_contract() -> None:
    """EventType has exactly the fourteen event types of API.md this server emits."""
    assert {str(t) for t in EventType} == {
        "request.delta",
        "task.queued",
        "task.started",
        "request.queued",
        "request.started",
        "request.progress",
        "request.output",
        "request.completed",
        "request.failed",
        "task.snapshot",
        "task.completed",
        "task.partial",
        "task.failed",
        "task.cancelled",
    }


def test_status_values_are_the_contract() -> None:
    """Task, request and skill-mode enums carry exactly the values of API.md."""
    assert {str(s) for s in TaskStatus} == {
        "queued",
        "running",
        "completed",
        "partial",
        "failed",
        "cancelled",
    }
    assert {str(s) for s in RequestStatus} == {
        "queued",
        "running",
        "completed",
        "failed",
        "cancelled",
    }
    assert {str(m) for m in SkillMode} == {"quick", "long"}


# -- Skill and listings --------------------------------------------------------------------
def test_skill_round_trips() -> None:
    """A Skill round-trips with exactly the contract's fields."""
    skill = make_skill()
    assert roundtrip(skill, Skill) == skill
    assert set(as_json(skill)) == {
        "app",
        "skill",
        "description",
        "mode",
        "input_schema",
        "max_requests",
    }


def test_skill_rejects_an_unknown_mode() -> None:
    """A Skill whose mode is neither quick nor long fails to decode."""
    raw = to_builtins(make_skill())
    raw["mode"] = "medium"
    with pytest.raises(msgspec.ValidationError, match=r"\$\.mode"):
        msgspec.json.decode(encode(raw), type=Skill)


def test_listings_round_trip() -> None:
    """AppsList and TaskList round-trip with their nested items."""
    apps = AppsList(items=[AppSkills(app="demo", skills=[make_skill()])])
    tasks = TaskList(items=[make_task()], total=1, limit=50, offset=0)
    assert roundtrip(apps, AppsList) == apps
    assert roundtrip(tasks, TaskList) == tasks


# -- Errors, bodies and small documents ----------------------------------------------------
def test_error_envelope_round_trips() -> None:
    """An ErrorEnvelope round-trips and nests its fields under ``error``."""
    envelope = ErrorEnvelope(
        ErrorBody(code="VALIDATION_ERROR", message="bad", details={"field": "x"}, request_id="r1")
    )
    assert roundtrip(envelope, ErrorEnvelope) == envelope
    assert as_json(envelope) == {
        "error": {
            "code": "VALIDATION_ERROR",
            "message": "bad",
            "details": {"field": "x"},
            "request_id": "r1",
        }
    }


def test_error_envelope_defaults() -> None:
    """An envelope without details or request_id decodes with ``{}`` and ``None``."""
    envelope = msgspec.json.decode(b'{"error":{"code":"X","message":"m"}}', type=ErrorEnvelope)
    assert envelope.error.details == {}
    assert envelope.error.request_id is None


def test_call_body_defaults() -> None:
    """A call body with only requests gets version "1", empty metadata and no webhook."""
    body = msgspec.json.decode(b'{"requests":[{"text":"a"}]}', type=CallBody)
    assert body == CallBody(requests=[{"text": "a"}], webhook_url=None, metadata={}, version="1")


def test_call_body_needs_a_request() -> None:
    """An empty requests list is rejected."""
    with pytest.raises(msgspec.ValidationError, match="length >= 1"):
        msgspec.json.decode(b'{"requests":[]}', type=CallBody)


def test_small_documents_round_trip() -> None:
    """Ticket, HealthStatus, ReadyStatus and WebhookPayload round-trip."""
    objects: list[Any] = [
        Ticket(ticket="tk_abc", expires_in=30),
        HealthStatus(),
        ReadyStatus(status="unavailable", checks={"backbone": "connection refused"}),
        WebhookPayload(type="task.completed", timestamp=NOW, data=make_task()),
    ]
    for obj in objects:
        assert roundtrip(obj, type(obj)) == obj
    assert as_json(HealthStatus()) == {"status": "ok"}


def test_ready_status_rejects_other_values() -> None:
    """ReadyStatus accepts only "ok" and "unavailable"."""
    with pytest.raises(msgspec.ValidationError, match=r"\$\.status"):
        msgspec.json.decode(b'{"status":"degraded","checks":{}}', type=ReadyStatus)


# -- Schema evolution ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("type_", "obj"),
    [
        (Task, make_task()),
        (Event, Event(task_id=TASK_ID, seq=1, type=EventType.TASK_QUEUED, time=NOW, data={})),
        (Skill, make_skill()),
        (ErrorEnvelope, ErrorEnvelope(ErrorBody(code="X", message="m"))),
        (CallBody, CallBody(requests=[{"text": "a"}])),
    ],
)
def test_inbound_models_tolerate_unknown_fields(type_: type[Any], obj: Any) -> None:
    """A newer peer's extra fields (top level and nested) are ignored when decoding."""
    raw = to_builtins(obj)
    raw["added_in_v1_1"] = {"anything": [1, 2]}
    if type_ is Task:
        raw["requests"][0]["eta"] = 3
        raw["links"]["cancel"] = "/x"
    if type_ is ErrorEnvelope:
        raw["error"]["trace"] = "abc"
    assert msgspec.json.decode(encode(raw), type=type_) == obj
