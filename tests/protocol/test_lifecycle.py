"""Task and sub-request lifecycles (``_lifecycle.py``): every rule, pushed through in memory."""

from __future__ import annotations

import contextlib
import itertools
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from skillwire.protocol import (
    Conflict,
    ErrorDetail,
    Event,
    EventType,
    IllegalTransition,
    OutputBounds,
    RequestStatus,
    Task,
    TaskStatus,
    _lifecycle,
    format_time,
    lifecycle,
    to_builtins,
)

TASK_ID = "tsk_lifecycle_test"
T0 = 1_795_435_200.0  # 2026-11-23T12:00:00Z
TERMINAL_TYPES = {
    EventType.TASK_COMPLETED,
    EventType.TASK_PARTIAL,
    EventType.TASK_FAILED,
    EventType.TASK_CANCELLED,
}
R = EventType  # short alias for the event tables below
FAILURE = {"error": {"code": "SKILL_ERROR", "message": "boom", "details": {"why": "test"}}}


class Run:
    """A task and its log, fed one request event at a time with a ticking clock."""

    def __init__(self, n_requests: int = 2) -> None:
        self.clock = (format_time(T0 + tick) for tick in itertools.count())
        self.task, first = lifecycle.new_task(
            TASK_ID, "demo", "echo", n_requests, {"k": "v"}, next(self.clock)
        )
        self.log: list[Event] = [first]

    def push(self, type_: EventType, index: int, data: Any = None) -> list[Event]:
        if data is None:
            data = FAILURE if type_ is EventType.REQUEST_FAILED else {}
        events = lifecycle.append(self.task, type_, index, data, next(self.clock))
        self.log.extend(events)
        return events

    def finish(self, index: int, *, ok: bool = True) -> list[Event]:
        """Start (if needed) and end request ``index``."""
        events: list[Event] = []
        if self.task.requests[index].status is RequestStatus.QUEUED:
            events += self.push(EventType.REQUEST_STARTED, index)
        return events + self.push(
            EventType.REQUEST_COMPLETED if ok else EventType.REQUEST_FAILED, index
        )

    @property
    def types(self) -> list[EventType]:
        return [e.type for e in self.log]

    @property
    def terminal(self) -> Event:
        assert self.log[-1].type in TERMINAL_TYPES
        return self.log[-1]


def final_task(event: Event) -> Task:
    assert isinstance(event.data, Task)
    return event.data


# -- new_task ------------------------------------------------------------------------------
def test_new_task_is_queued_at_seq_1() -> None:
    """A new task is queued with queued requests, and its first event is task.queued seq 1."""
    task, event = lifecycle.new_task(TASK_ID, "demo", "echo", 3, {"a": 1}, "T0")
    assert task.status is TaskStatus.QUEUED
    assert [(r.index, r.status) for r in task.requests] == [
        (0, RequestStatus.QUEUED),
        (1, RequestStatus.QUEUED),
        (2, RequestStatus.QUEUED),
    ]
    assert (task.last_seq, task.created_at, task.updated_at, task.finished_at) == (
        1,
        "T0",
        "T0",
        None,
    )
    assert task.links.self == f"/api/v1/tasks/{TASK_ID}"
    assert task.links.events == f"/api/v1/tasks/{TASK_ID}/events"
    assert task.metadata == {"a": 1}
    assert event == Event(task_id=TASK_ID, seq=1, type=EventType.TASK_QUEUED, time="T0", data={})


# -- the happy path ------------------------------------------------------------------------
def test_two_request_happy_path() -> None:
    """Two requests run to completion: contiguous seqs, implied task events, a final Task."""
    run = Run(2)
    run.push(R.REQUEST_STARTED, 1)
    run.push(R.REQUEST_STARTED, 0)
    run.push(R.REQUEST_PROGRESS, 0, {"progress": 0.5, "message": "half"})
    run.push(R.REQUEST_OUTPUT, 1, {"type": "text", "text": "b1"})
    run.push(R.REQUEST_OUTPUT, 0, {"type": "text", "text": "a1"})
    run.push(R.REQUEST_OUTPUT, 1, {"type": "text", "text": "b2"})
    first_done = run.push(R.REQUEST_COMPLETED, 1)
    last_done = run.push(R.REQUEST_COMPLETED, 0)

    assert run.types == [
        R.TASK_QUEUED,
        R.TASK_STARTED,
        R.REQUEST_STARTED,
        R.REQUEST_STARTED,
        R.REQUEST_PROGRESS,
        R.REQUEST_OUTPUT,
        R.REQUEST_OUTPUT,
        R.REQUEST_OUTPUT,
        R.REQUEST_COMPLETED,
        R.REQUEST_COMPLETED,
        R.TASK_COMPLETED,
    ]
    assert [e.seq for e in run.log] == list(range(1, 12))
    assert [e.type for e in first_done] == [R.REQUEST_COMPLETED]
    assert [e.type for e in last_done] == [R.REQUEST_COMPLETED, R.TASK_COMPLETED]
    assert [e.index for e in run.log] == [None, None, 1, 0, 0, 1, 0, 1, 1, 0, None]

    final = final_task(run.terminal)
    assert final.status is TaskStatus.COMPLETED
    assert final.last_seq == run.terminal.seq == run.task.last_seq == 11
    assert final.previews == [
        {"type": "text", "text": "a1"},
        {"type": "text", "text": "b1"},
        {"type": "text", "text": "b2"},
    ]
    assert [(r.status, r.progress) for r in final.requests] == [
        (RequestStatus.COMPLETED, 1.0),
        (RequestStatus.COMPLETED, 1.0),
    ]
    assert final.finished_at == final.updated_at == run.terminal.time
    assert final.error is None
    assert run.task.status is TaskStatus.COMPLETED


def test_task_started_comes_once_before_the_first_request_started() -> None:
    """The first request.started is preceded by task.started; later ones are not."""
    run = Run(2)
    first = run.push(R.REQUEST_STARTED, 0)
    second = run.push(R.REQUEST_STARTED, 1)
    assert [(e.seq, e.type, e.index) for e in first] == [
        (2, R.TASK_STARTED, None),
        (3, R.REQUEST_STARTED, 0),
    ]
    assert [(e.seq, e.type) for e in second] == [(4, R.REQUEST_STARTED)]
    assert run.task.status is TaskStatus.RUNNING
    assert first[0].data == {}


def test_event_times_and_updated_at_follow_the_clock() -> None:
    """Each appended event is stamped with ``now``, and so is the task's ``updated_at``."""
    run = Run(1)
    events = run.push(R.REQUEST_STARTED, 0)
    assert {e.time for e in events} == {run.task.updated_at}
    assert run.task.updated_at != run.task.created_at


def test_progress_and_output_update_the_request() -> None:
    """request.progress sets progress (kept when absent); request.output appends to output."""
    run = Run(1)
    run.push(R.REQUEST_STARTED, 0)
    run.push(R.REQUEST_PROGRESS, 0, {"progress": 0.25})
    run.push(R.REQUEST_PROGRESS, 0, {"message": "still going"})
    run.push(R.REQUEST_OUTPUT, 0, {"i": 1})
    run.push(R.REQUEST_OUTPUT, 0, {"i": 2})
    request = run.task.requests[0]
    assert request.progress == 0.25
    assert request.output == [{"i": 1}, {"i": 2}]
    assert run.log[-1].data == {"i": 2}


# -- final statuses ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("outcomes", "status", "terminal"),
    [
        ((True, True), TaskStatus.COMPLETED, R.TASK_COMPLETED),
        ((False, False), TaskStatus.FAILED, R.TASK_FAILED),
        ((True, False), TaskStatus.PARTIAL, R.TASK_PARTIAL),
        ((False, True), TaskStatus.PARTIAL, R.TASK_PARTIAL),
        ((True,), TaskStatus.COMPLETED, R.TASK_COMPLETED),
        ((False,), TaskStatus.FAILED, R.TASK_FAILED),
    ],
)
def test_final_status(outcomes: tuple[bool, ...], status: TaskStatus, terminal: EventType) -> None:
    """All completed → completed, all failed → failed, a mix → partial."""
    run = Run(len(outcomes))
    for index, ok in enumerate(outcomes):
        run.finish(index, ok=ok)
    assert run.terminal.type is terminal
    assert run.task.status is status
    assert final_task(run.terminal).status is status
    assert final_task(run.terminal).last_seq == run.terminal.seq


def test_failed_request_records_its_error() -> None:
    """request.failed stores the error on its request; a failed task takes request 0's."""
    run = Run(2)
    run.finish(1, ok=False)
    run.push(R.REQUEST_FAILED, 0, {"error": {"code": "TIMEOUT", "message": "slow"}})
    final = final_task(run.terminal)
    assert final.requests[1].error == ErrorDetail("SKILL_ERROR", "boom", {"why": "test"})
    assert final.requests[0].error == ErrorDetail("TIMEOUT", "slow")
    assert final.error == final.requests[0].error


def test_partial_task_has_no_task_error() -> None:
    """A partial task reports errors per request, not on the task."""
    run = Run(2)
    run.finish(0)
    run.finish(1, ok=False)
    assert run.task.status is TaskStatus.PARTIAL
    assert final_task(run.terminal).error is None


def test_request_may_fail_before_it_starts() -> None:
    """A queued request may fail at once (e.g. rejected input) and end the task."""
    run = Run(1)
    run.push(R.REQUEST_FAILED, 0)
    assert run.types == [R.TASK_QUEUED, R.REQUEST_FAILED, R.TASK_FAILED]


# -- cancel --------------------------------------------------------------------------------
def test_cancel_marks_unfinished_requests_cancelled() -> None:
    """Cancel leaves finished requests alone, cancels the rest and returns task.cancelled."""
    run = Run(3)
    run.push(R.REQUEST_STARTED, 0)
    run.push(R.REQUEST_OUTPUT, 0, "kept")
    run.push(R.REQUEST_COMPLETED, 0)
    run.push(R.REQUEST_STARTED, 1)
    run.push(R.REQUEST_OUTPUT, 1, "partial output")
    seq_before = run.task.last_seq
    event = lifecycle.cancel(run.task, "T-cancel")
    assert event.type is R.TASK_CANCELLED
    assert event.seq == seq_before + 1 == run.task.last_seq
    assert event.index is None
    assert event.time == "T-cancel"
    assert [r.status for r in run.task.requests] == [
        RequestStatus.COMPLETED,
        RequestStatus.CANCELLED,
        RequestStatus.CANCELLED,
    ]
    final = final_task(event)
    assert final.status is TaskStatus.CANCELLED
    assert final.last_seq == event.seq
    assert final.finished_at == "T-cancel"
    assert final.previews == ["kept", "partial output"]


def test_cancel_of_a_queued_task() -> None:
    """A task that never started can be cancelled; it goes straight to cancelled."""
    run = Run(2)
    event = lifecycle.cancel(run.task, "T1")
    assert (event.seq, event.type) == (2, R.TASK_CANCELLED)
    assert {r.status for r in run.task.requests} == {RequestStatus.CANCELLED}


@pytest.mark.parametrize("outcome", ["completed", "partial", "failed", "cancelled"])
def test_cancel_of_a_finished_task_is_a_conflict(outcome: str) -> None:
    """Cancelling a task that already ended raises Conflict (409) and changes nothing."""
    run = Run(2)
    if outcome == "cancelled":
        lifecycle.cancel(run.task, "T1")
    else:
        run.finish(0, ok=outcome != "failed")
        run.finish(1, ok=outcome == "completed")
    before = to_builtins(run.task)
    with pytest.raises(Conflict) as info:
        lifecycle.cancel(run.task, "T2")
    assert info.value.status == 409
    assert info.value.details == {"status": outcome}
    assert to_builtins(run.task) == before


# -- discarded events ----------------------------------------------------------------------
@pytest.mark.parametrize("type_", list(lifecycle.REQUEST_TRANSITIONS))
def test_nothing_is_appended_to_a_finished_task(type_: EventType) -> None:
    """After the terminal event, any request event returns [] and leaves the task alone."""
    run = Run(2)
    run.push(R.REQUEST_STARTED, 0)
    lifecycle.cancel(run.task, "T1")
    before = to_builtins(run.task)
    for index in (0, 1):
        assert lifecycle.append(run.task, type_, index, FAILURE, "T2") == []
    assert to_builtins(run.task) == before


@pytest.mark.parametrize("type_", list(lifecycle.REQUEST_TRANSITIONS))
def test_events_for_a_finished_request_are_discarded(type_: EventType) -> None:
    """A late or duplicate event for a request that already ended returns []."""
    run = Run(2)
    run.push(R.REQUEST_STARTED, 0)
    run.push(R.REQUEST_OUTPUT, 0, "out")
    run.push(R.REQUEST_COMPLETED, 0)
    run.push(R.REQUEST_STARTED, 1)
    before = to_builtins(run.task)
    assert lifecycle.append(run.task, type_, 0, FAILURE, "T9") == []
    assert to_builtins(run.task) == before


# -- illegal transitions -------------------------------------------------------------------
@pytest.mark.parametrize("type_", [R.REQUEST_OUTPUT, R.REQUEST_PROGRESS, R.REQUEST_COMPLETED])
def test_running_only_event_before_started_is_illegal(type_: EventType) -> None:
    """Output, progress or completion of a request that has not started raises."""
    run = Run(2)
    with pytest.raises(IllegalTransition) as info:
        run.push(type_, 1, {"progress": 0.1})
    assert info.value.details == {"index": 1, "status": RequestStatus.QUEUED}
    assert run.task.last_seq == 1
    assert run.task.status is TaskStatus.QUEUED


@pytest.mark.parametrize("index", [-1, 2, 100])
def test_bad_index_is_illegal(index: int) -> None:
    """An index outside the task's requests raises IllegalTransition."""
    run = Run(2)
    with pytest.raises(IllegalTransition, match="out of range"):
        run.push(R.REQUEST_STARTED, index)
    assert run.task.last_seq == 1


@pytest.mark.parametrize("type_", [t for t in EventType if not t.startswith("request.")])
def test_task_event_types_cannot_be_appended(type_: EventType) -> None:
    """Only request.* events go through append; task.* events are implied, never pushed."""
    run = Run(1)
    run.push(R.REQUEST_STARTED, 0)
    with pytest.raises(IllegalTransition, match="not a request event"):
        run.push(type_, 0)
    assert run.task.last_seq == 3


def test_illegal_transition_is_a_server_fault() -> None:
    """IllegalTransition is a 500, never blamed on the client."""
    assert IllegalTransition.status == 500
    assert IllegalTransition.temporary is False


# -- re-delivery and requeue ---------------------------------------------------------------
def test_redelivered_start_resets_output_and_progress() -> None:
    """request.started on a running request (at-least-once re-delivery) starts it afresh."""
    run = Run(2)
    run.push(R.REQUEST_STARTED, 0)
    run.push(R.REQUEST_PROGRESS, 0, {"progress": 0.7})
    run.push(R.REQUEST_OUTPUT, 0, "stale")
    events = run.push(R.REQUEST_STARTED, 0)
    assert [e.type for e in events] == [R.REQUEST_STARTED]
    request = run.task.requests[0]
    assert (request.status, request.progress, request.output) == (RequestStatus.RUNNING, 0.0, [])
    run.push(R.REQUEST_OUTPUT, 0, "fresh")
    run.finish(0)
    run.finish(1)
    assert final_task(run.terminal).previews == ["fresh"]
    assert run.types.count(R.TASK_STARTED) == 1


def test_request_queued_sends_a_running_request_back_to_the_queue() -> None:
    """request.queued (provider rate limit) makes a running request queued until it restarts."""
    run = Run(1)
    run.push(R.REQUEST_STARTED, 0)
    run.push(R.REQUEST_QUEUED, 0, {"reason": "provider_rate_limit", "retry_at": "T"})
    assert run.task.requests[0].status is RequestStatus.QUEUED
    assert run.task.status is TaskStatus.RUNNING
    with pytest.raises(IllegalTransition):
        run.push(R.REQUEST_OUTPUT, 0, "too early")
    run.push(R.REQUEST_STARTED, 0)
    run.finish(0)
    assert run.terminal.type is R.TASK_COMPLETED


def test_request_queued_does_not_start_the_task() -> None:
    """A request.queued before any start appends only itself; the task stays queued."""
    run = Run(1)
    events = run.push(R.REQUEST_QUEUED, 0, {"reason": "provider_rate_limit", "retry_at": "T"})
    assert [(e.seq, e.type, e.index) for e in events] == [(2, R.REQUEST_QUEUED, 0)]
    assert run.task.status is TaskStatus.QUEUED


# -- task_view and the tables --------------------------------------------------------------
def test_task_view_fills_previews_in_request_order_and_copies() -> None:
    """task_view lists outputs request by request, and mutating the view leaves the task."""
    run = Run(3)
    for index in (2, 0, 1):
        run.push(R.REQUEST_STARTED, index)
        run.push(R.REQUEST_OUTPUT, index, f"out{index}")
    view = lifecycle.task_view(run.task)
    assert view.previews == ["out0", "out1", "out2"]
    assert run.task.previews == []
    view.requests[0].output.append("extra")
    view.requests[1].status = RequestStatus.FAILED
    assert run.task.requests[0].output == ["out0"]
    assert run.task.requests[1].status is RequestStatus.RUNNING


def test_terminal_snapshot_is_frozen() -> None:
    """The Task inside a terminal event is a copy, not the live task record."""
    run = Run(1)
    run.push(R.REQUEST_STARTED, 0)
    run.push(R.REQUEST_OUTPUT, 0, "x")
    run.finish(0)
    final = final_task(run.terminal)
    assert final is not run.task
    assert final.requests[0] is not run.task.requests[0]
    assert final.requests[0].output is not run.task.requests[0].output


def test_terminal_tables_agree() -> None:
    """Each terminal task status has its terminal event type, and nothing else does."""
    assert set(lifecycle.TASK_TERMINAL_EVENTS) == set(lifecycle.TERMINAL_TASK_STATUSES)
    assert set(lifecycle.TASK_TERMINAL_EVENTS.values()) == TERMINAL_TYPES
    assert {
        RequestStatus.COMPLETED,
        RequestStatus.FAILED,
        RequestStatus.CANCELLED,
    } == lifecycle.TERMINAL_REQUEST_STATUSES
    assert set(lifecycle.REQUEST_TRANSITIONS) == {t for t in EventType if t.startswith("request.")}


# -- property: any valid sequence keeps the log well-formed --------------------------------
# The contract's own table, kept apart from the module's so that a change to one shows here.
VALID_FROM: dict[RequestStatus, list[EventType]] = {
    RequestStatus.QUEUED: [R.REQUEST_QUEUED, R.REQUEST_STARTED, R.REQUEST_FAILED],
    RequestStatus.RUNNING: [
        R.REQUEST_QUEUED,
        R.REQUEST_STARTED,
        R.REQUEST_PROGRESS,
        R.REQUEST_OUTPUT,
        R.REQUEST_COMPLETED,
        R.REQUEST_FAILED,
    ],
}
PAYLOADS: dict[EventType, st.SearchStrategy[Any]] = {
    R.REQUEST_QUEUED: st.just({"reason": "provider_rate_limit", "retry_at": "T"}),
    R.REQUEST_STARTED: st.just({}),
    R.REQUEST_PROGRESS: st.floats(0, 1).map(lambda p: {"progress": p, "message": "m"}),
    R.REQUEST_OUTPUT: st.integers(0, 1000).map(lambda i: {"type": "tick", "i": i}),
    R.REQUEST_COMPLETED: st.just({}),
    R.REQUEST_FAILED: st.just(FAILURE),
}


def expected_previews(log: list[Event], n_requests: int) -> list[Any]:
    """Replay the log: a request's outputs since its last request.started, in request order."""
    outputs: list[list[Any]] = [[] for _ in range(n_requests)]
    for event in log:
        if event.type is R.REQUEST_STARTED:
            assert event.index is not None
            outputs[event.index] = []
        elif event.type is R.REQUEST_OUTPUT:
            assert event.index is not None
            outputs[event.index].append(event.data)
    return [item for items in outputs for item in items]


@settings(max_examples=300, deadline=None)
@given(data=st.data(), n_requests=st.integers(1, 5), cancel_at=st.none() | st.integers(0, 30))
def test_random_valid_sequences_keep_the_log_well_formed(
    data: st.DataObject, n_requests: int, cancel_at: int | None
) -> None:
    """Random valid request events on 1..5 requests: seqs 1..N, one terminal event, last."""
    run = Run(n_requests)
    for step in itertools.count():
        if run.task.status in lifecycle.TERMINAL_TASK_STATUSES:
            break
        if step == cancel_at:
            run.log.append(lifecycle.cancel(run.task, f"cancel@{step}"))
            break
        open_ = [r.index for r in run.task.requests if r.status in VALID_FROM]
        index = data.draw(st.sampled_from(open_), label="index")
        if step < 40:
            type_ = data.draw(
                st.sampled_from(VALID_FROM[run.task.requests[index].status]), label="type"
            )
            run.push(type_, index, data.draw(PAYLOADS[type_], label="data"))
        else:  # long enough: end the open requests
            run.finish(index, ok=data.draw(st.booleans(), label="ok"))

    # Events after the end are discarded.
    for index in range(n_requests):
        assert lifecycle.append(run.task, R.REQUEST_OUTPUT, index, {}, "late") == []

    log = run.log
    assert [e.seq for e in log] == list(range(1, len(log) + 1))
    assert [e.type in TERMINAL_TYPES for e in log].count(True) == 1
    assert log[-1].type in TERMINAL_TYPES
    assert run.task.last_seq == log[-1].seq
    final = final_task(log[-1])
    assert final.last_seq == log[-1].seq
    assert final.status in lifecycle.TERMINAL_TASK_STATUSES
    assert all(r.status in lifecycle.TERMINAL_REQUEST_STATUSES for r in final.requests)
    assert final.previews == expected_previews(log, n_requests)
    for event in log:
        assert (event.index is not None) == event.type.startswith("request.")
    if R.REQUEST_STARTED in run.types:
        assert run.types.count(R.TASK_STARTED) == 1
        assert run.types.index(R.TASK_STARTED) < run.types.index(R.REQUEST_STARTED)
    else:
        assert R.TASK_STARTED not in run.types
    if cancel_at is None or final.status is not TaskStatus.CANCELLED:
        statuses = {r.status for r in final.requests}
        expected = (
            TaskStatus.COMPLETED
            if statuses == {RequestStatus.COMPLETED}
            else TaskStatus.FAILED
            if statuses == {RequestStatus.FAILED}
            else TaskStatus.PARTIAL
        )
        assert final.status is expected


# -- streamed outputs (request.delta) ------------------------------------------------------
def delta(output: int, append: str, field: str = "text") -> dict[str, Any]:
    return {"output": output, "field": field, "append": append}


def test_delta_appends_to_the_outputs_string_field() -> None:
    """request.delta grows field ``field`` of output ``n``; the event carries the data as sent."""
    run = Run(1)
    run.push(R.REQUEST_STARTED, 0)
    run.push(R.REQUEST_OUTPUT, 0, {"type": "text", "text": ""})
    run.push(R.REQUEST_OUTPUT, 0, {"type": "tool_call", "name": "f", "arguments": ""})
    run.push(R.REQUEST_DELTA, 0, delta(0, "Hel"))
    run.push(R.REQUEST_DELTA, 0, delta(1, '{"a', "arguments"))
    events = run.push(R.REQUEST_DELTA, 0, delta(0, "lo"))
    assert [(e.type, e.index, e.data) for e in events] == [(R.REQUEST_DELTA, 0, delta(0, "lo"))]
    assert run.task.requests[0].output == [
        {"type": "text", "text": "Hello"},
        {"type": "tool_call", "name": "f", "arguments": '{"a'},
    ]
    assert run.task.requests[0].status is RequestStatus.RUNNING


def test_delta_never_changes_a_task_already_handed_out() -> None:
    """A view taken before a delta keeps the text it had (outputs are replaced, not mutated)."""
    run = Run(1)
    run.push(R.REQUEST_STARTED, 0)
    run.push(R.REQUEST_OUTPUT, 0, {"type": "text", "text": "a"})
    view = lifecycle.task_view(run.task)
    run.push(R.REQUEST_DELTA, 0, delta(0, "b"))
    assert view.requests[0].output == [{"type": "text", "text": "a"}]
    assert run.task.requests[0].output == [{"type": "text", "text": "ab"}]


@pytest.mark.parametrize(
    ("output", "data", "message"),
    [
        ({"type": "text", "text": ""}, delta(1, "x"), "does not exist"),
        ({"type": "tick", "i": 1}, delta(0, "x"), "is not a string"),
        ({"type": "text", "text": ""}, delta(0, "x", "other"), "is not a string"),
        ("plain", delta(0, "x"), "is not a string"),
        ({"type": "text", "text": ""}, {"output": 0, "field": "text"}, "append"),
        ({"type": "text", "text": ""}, {"output": -1, "field": "text", "append": "x"}, "output"),
        ({"type": "text", "text": ""}, {"output": 0, "field": "text", "append": 3}, "append"),
    ],
)
def test_delta_that_cannot_apply_is_illegal(output: Any, data: Any, message: str) -> None:
    """A delta to an output never emitted, to a field that is not a string, or malformed,
    raises and appends nothing."""
    run = Run(1)
    run.push(R.REQUEST_STARTED, 0)
    run.push(R.REQUEST_OUTPUT, 0, output)
    before = to_builtins(run.task)
    with pytest.raises(IllegalTransition, match=message):
        run.push(R.REQUEST_DELTA, 0, data)
    assert to_builtins(run.task) == before


@pytest.mark.parametrize("status", ["queued", "completed", "failed"])
def test_delta_only_while_the_request_runs(status: str) -> None:
    """A delta before request.started raises; after the request ended it is discarded."""
    run = Run(2)
    if status == "queued":
        with pytest.raises(IllegalTransition):
            run.push(R.REQUEST_DELTA, 0, delta(0, "x"))
        return
    run.push(R.REQUEST_STARTED, 0)
    run.push(R.REQUEST_OUTPUT, 0, {"type": "text", "text": "a"})
    run.finish(0, ok=status == "completed")
    assert lifecycle.append(run.task, R.REQUEST_DELTA, 0, delta(0, "x"), "late") == []
    assert run.task.requests[0].output == [{"type": "text", "text": "a"}]


def test_delta_to_a_dropped_output_is_logged_but_not_applied() -> None:
    """Once output 0 left the task, a delta to it is appended (stored, delivered) and changes
    nothing the task holds."""
    run = Run(1)
    bounds = OutputBounds(max_outputs=1)
    for type_, data in [
        (R.REQUEST_STARTED, {}),
        (R.REQUEST_OUTPUT, {"type": "text", "text": "a"}),
        (R.REQUEST_OUTPUT, {"type": "text", "text": "b"}),
    ]:
        lifecycle.append(run.task, type_, 0, data, "T", bounds)
    events = lifecycle.append(run.task, R.REQUEST_DELTA, 0, delta(0, "x"), "T", bounds)
    assert [e.type for e in events] == [R.REQUEST_DELTA]
    request = run.task.requests[0]
    assert (request.output, request.outputs_dropped) == ([{"type": "text", "text": "b"}], 1)
    lifecycle.append(run.task, R.REQUEST_DELTA, 0, delta(1, "c"), "T", bounds)
    assert request.output == [{"type": "text", "text": "bc"}]


def test_completed_data_is_the_requests_result() -> None:
    """request.completed's data is kept as requests[i].result; {} leaves it null."""
    run = Run(2)
    run.push(R.REQUEST_STARTED, 0)
    run.push(R.REQUEST_COMPLETED, 0, {"finish_reason": "stop", "usage": {"total_tokens": 3}})
    run.finish(1)
    final = final_task(run.terminal)
    assert [r.result for r in final.requests] == [
        {"finish_reason": "stop", "usage": {"total_tokens": 3}},
        None,
    ]


def test_completed_data_must_be_an_object() -> None:
    """request.completed with data that is not an object raises."""
    run = Run(1)
    run.push(R.REQUEST_STARTED, 0)
    with pytest.raises(IllegalTransition, match="object"):
        run.push(R.REQUEST_COMPLETED, 0, ["no"])


def test_restart_resets_outputs_dropped_and_result() -> None:
    """A re-delivered request.started starts afresh: no output, none dropped, no result."""
    run = Run(1)
    bounds = OutputBounds(max_outputs=1)
    for type_, data in [
        (R.REQUEST_STARTED, {}),
        (R.REQUEST_OUTPUT, {"type": "text", "text": "a"}),
        (R.REQUEST_OUTPUT, {"type": "text", "text": "b"}),
        (R.REQUEST_STARTED, {}),
    ]:
        lifecycle.append(run.task, type_, 0, data, "T", bounds)
    request = run.task.requests[0]
    assert (request.output, request.outputs_dropped, request.result) == ([], 0, None)
    assert bounds.total_bytes == 0


def test_delta_never_changes_the_output_events_data() -> None:
    """The task keeps its own copy of an output: deltas never change the request.output
    event's data (already handed to the log)."""
    run = Run(1)
    run.push(R.REQUEST_STARTED, 0)
    [event] = run.push(R.REQUEST_OUTPUT, 0, {"type": "text", "text": "a"})
    run.push(R.REQUEST_DELTA, 0, delta(0, "b"))
    assert event.data == {"type": "text", "text": "a"}
    assert run.task.requests[0].output == [{"type": "text", "text": "ab"}]


def test_a_view_taken_between_deltas_keeps_its_text() -> None:
    """Views taken between deltas each keep the text of their moment."""
    run = Run(1)
    run.push(R.REQUEST_STARTED, 0)
    run.push(R.REQUEST_OUTPUT, 0, {"type": "text", "text": ""})
    views = []
    for piece in "abc":
        run.push(R.REQUEST_DELTA, 0, delta(0, piece))
        views.append(lifecycle.task_view(run.task))
    assert [v.requests[0].output[0]["text"] for v in views] == ["a", "ab", "abc"]
    assert [v.previews[0]["text"] for v in views] == ["a", "ab", "abc"]


def test_an_output_follows_the_rules_in_every_state() -> None:
    """request.output: one event on a running request (seq and task updated), nothing on a
    finished request or task, IllegalTransition on a queued request or a bad index."""
    task, _ = lifecycle.new_task(TASK_ID, "demo", "echo", 2, {}, "T0")
    with pytest.raises(IllegalTransition):
        lifecycle.append(task, R.REQUEST_OUTPUT, 0, {"a": 1}, "T1")
    lifecycle.append(task, R.REQUEST_STARTED, 0, {}, "T1")
    (event,) = lifecycle.append(task, R.REQUEST_OUTPUT, 0, {"a": 1}, "T2", OutputBounds())
    assert (event.seq, event.type, event.index, event.time) == (4, R.REQUEST_OUTPUT, 0, "T2")
    assert (task.last_seq, task.updated_at, task.requests[0].output) == (4, "T2", [{"a": 1}])
    with pytest.raises(IllegalTransition):
        lifecycle.append(task, R.REQUEST_OUTPUT, 1, {"a": 1}, "T3")  # still queued
    with pytest.raises(IllegalTransition):
        lifecycle.append(task, R.REQUEST_OUTPUT, 2, {"a": 1}, "T3")
    lifecycle.append(task, R.REQUEST_COMPLETED, 0, {}, "T3")
    assert lifecycle.append(task, R.REQUEST_OUTPUT, 0, {"a": 2}, "T4") == []
    lifecycle.cancel(task, "T5")
    assert lifecycle.append(task, R.REQUEST_OUTPUT, 1, {"a": 2}, "T6") == []
    assert task.requests[0].output == [{"a": 1}]


TEXT = {"type": "text", "text": ""}
OUTPUTS = st.sampled_from([TEXT, {"type": "text", "text": "ab"}, {"i": 1}, "plain", [1]])
APPENDS = st.sampled_from(["", "x", "é\u2028", 'q"\\'])
DELTA_DATA = st.one_of(
    st.fixed_dictionaries(
        {
            "output": st.sampled_from([-1, 0, 1, 2, 3, True, None, 1.0]),
            "field": st.sampled_from(["text", "i", "type", "none", 3, ["text"]]),
            "append": st.one_of(APPENDS, st.sampled_from([3, None])),
        }
    ),
    st.builds(
        lambda n, text: {"output": n, "field": "text", "append": text, "extra": 1},
        st.integers(0, 2),
        APPENDS,
    ),
    st.builds(lambda n: {"output": n, "field": "text"}, st.integers(0, 2)),
    st.sampled_from([None, "x", [0, "text", "x"]]),
)


def _never(*args: Any) -> bool:
    return False


def _apply_all(
    outputs: list[Any], deltas: list[Any], max_outputs: int, *, short: bool
) -> list[Any]:
    """What each delta did (its events or its error) and then the task and its bounds."""
    run = Run(1)
    bounds = OutputBounds(max_outputs=max_outputs, max_output_bytes=60)
    lifecycle.append(run.task, R.REQUEST_STARTED, 0, {}, "T", bounds)
    for output in outputs:
        lifecycle.append(run.task, R.REQUEST_OUTPUT, 0, output, "T", bounds)
    results: list[Any] = []
    for data in deltas:
        try:
            # The full rules: the short path declines every delta.
            with contextlib.nullcontext() if short else patch.object(_lifecycle, "_grew", _never):
                events = lifecycle.append(run.task, R.REQUEST_DELTA, 0, data, "T", bounds)
            results.append(to_builtins(events))
        except IllegalTransition as exc:
            results.append((str(exc), exc.details))
    return [*results, to_builtins(run.task), bounds.total_bytes]


@settings(max_examples=300, deadline=None)
@given(
    outputs=st.lists(OUTPUTS, max_size=4),
    deltas=st.lists(DELTA_DATA, min_size=1, max_size=6),
    max_outputs=st.integers(1, 4),
)
@example(
    outputs=[TEXT, TEXT], deltas=[{"output": True, "field": "text", "append": "x"}], max_outputs=4
)
@example(
    outputs=[TEXT], deltas=[{"output": 0, "field": "text", "append": "x", "n": 1}], max_outputs=4
)
def test_a_delta_on_the_short_path_matches_the_full_rules(
    outputs: list[Any], deltas: list[Any], max_outputs: int
) -> None:
    """request.delta on a running request takes a short path: for every shape of delta, to
    held, dropped or missing outputs and fields, it appends and changes what the full rules do
    (the same events, task, output sizes and errors)."""
    assert _apply_all(outputs, deltas, max_outputs, short=True) == _apply_all(
        outputs, deltas, max_outputs, short=False
    )
