"""How much output a Task holds (``_bounds.py``): the oldest outputs leave, counted."""

from __future__ import annotations

from typing import Any

import msgspec

from skillwire.protocol import (
    EventType,
    OutputBounds,
    Task,
    encode,
    lifecycle,
)

R = EventType


def started(n_requests: int, bounds: OutputBounds) -> Task:
    task, _ = lifecycle.new_task("tsk_bounds", "demo", "echo", n_requests, {}, "T0")
    for index in range(n_requests):
        lifecycle.append(task, R.REQUEST_STARTED, index, {}, "T", bounds)
    return task


def push(task: Task, bounds: OutputBounds, index: int, type_: EventType, data: Any) -> None:
    lifecycle.append(task, type_, index, data, "T", bounds)


def size(item: Any) -> int:
    return len(encode(item))


def test_past_max_outputs_the_oldest_leave_and_are_counted() -> None:
    """A request holds its last max_outputs outputs; outputs_dropped counts the others."""
    bounds = OutputBounds(max_outputs=3)
    task = started(2, bounds)
    for i in range(10):
        push(task, bounds, 0, R.REQUEST_OUTPUT, {"i": i})
    push(task, bounds, 1, R.REQUEST_OUTPUT, {"i": 100})
    assert task.requests[0].output == [{"i": 7}, {"i": 8}, {"i": 9}]
    assert task.requests[0].outputs_dropped == 7
    assert (task.requests[1].output, task.requests[1].outputs_dropped) == ([{"i": 100}], 0)
    assert bounds.total_bytes == sum(size(o) for r in task.requests for o in r.output)


def test_past_max_output_bytes_the_oldest_across_requests_leave() -> None:
    """Over the byte limit, outputs leave oldest first whichever request holds them."""
    item = {"t": "x" * 90}
    bounds = OutputBounds(max_output_bytes=size(item) * 3)
    task = started(2, bounds)
    push(task, bounds, 0, R.REQUEST_OUTPUT, {**item, "n": 0})  # a bit larger than item
    push(task, bounds, 1, R.REQUEST_OUTPUT, item)
    push(task, bounds, 0, R.REQUEST_OUTPUT, item)
    assert [r.outputs_dropped for r in task.requests] == [1, 0]
    push(task, bounds, 0, R.REQUEST_OUTPUT, item)
    assert [r.outputs_dropped for r in task.requests] == [1, 0]  # exactly at the limit
    push(task, bounds, 0, R.REQUEST_OUTPUT, item)
    assert [r.outputs_dropped for r in task.requests] == [1, 1]
    assert [len(r.output) for r in task.requests] == [3, 0]
    assert bounds.total_bytes <= bounds.max_output_bytes


def test_a_growing_output_pushes_older_ones_out() -> None:
    """Deltas count toward the byte limit: as a streamed output grows, older outputs leave."""
    bounds = OutputBounds(max_output_bytes=200)
    task = started(1, bounds)
    push(task, bounds, 0, R.REQUEST_OUTPUT, {"type": "tick", "i": 1})
    push(task, bounds, 0, R.REQUEST_OUTPUT, {"type": "text", "text": ""})
    for _ in range(18):
        push(
            task, bounds, 0, R.REQUEST_DELTA, {"output": 1, "field": "text", "append": "abcdefghi"}
        )
    request = task.requests[0]
    assert request.outputs_dropped == 1
    assert request.output == [{"type": "text", "text": "abcdefghi" * 18}]
    assert bounds.total_bytes == size(request.output[0])


def test_escaped_characters_are_counted_as_encoded() -> None:
    """A delta's size is its encoded size: quotes and newlines count as their escapes."""
    bounds = OutputBounds()
    task = started(1, bounds)
    push(task, bounds, 0, R.REQUEST_OUTPUT, {"text": ""})
    push(task, bounds, 0, R.REQUEST_DELTA, {"output": 0, "field": "text", "append": 'a"\n\u2028é'})
    assert bounds.total_bytes == size(task.requests[0].output[0])


def test_one_output_larger_than_the_limit_leaves_whole() -> None:
    """An output alone over max_output_bytes is never cut: it leaves the task, counted, and
    later deltas to it are logged but not applied."""
    bounds = OutputBounds(max_output_bytes=100)
    task = started(1, bounds)
    push(task, bounds, 0, R.REQUEST_OUTPUT, {"type": "text", "text": ""})
    push(task, bounds, 0, R.REQUEST_DELTA, {"output": 0, "field": "text", "append": "y" * 200})
    request = task.requests[0]
    assert (request.output, request.outputs_dropped, bounds.total_bytes) == ([], 1, 0)
    events = lifecycle.append(
        task, R.REQUEST_DELTA, 0, {"output": 0, "field": "text", "append": "z"}, "T", bounds
    )
    assert [e.type for e in events] == [R.REQUEST_DELTA]
    assert request.output == []


def test_terminal_event_and_view_stay_bounded_after_100000_outputs() -> None:
    """100,000 outputs: the final Task holds max_outputs of them and counts the rest."""
    bounds = OutputBounds(max_outputs=1_000)
    task = started(1, bounds)
    for i in range(100_000):
        push(task, bounds, 0, R.REQUEST_OUTPUT, {"type": "tick", "i": i})
    events = lifecycle.append(task, R.REQUEST_COMPLETED, 0, {}, "T", bounds)
    final = events[-1].data
    assert isinstance(final, Task)
    assert final.requests[0].outputs_dropped == 99_000
    assert final.requests[0].output[0] == {"type": "tick", "i": 99_000}
    assert len(final.previews) == 1_000


def test_a_bounded_output_event_encodes_as_its_plain_twin() -> None:
    """An output event whose data was encoded once for the bounds encodes byte for byte as the
    same event with the output as plain data (separators escaped, non-ASCII kept)."""
    bounds = OutputBounds()
    task = started(1, bounds)
    output = {"text": "a\u2028b é", "n": 1.5, "list": [1, None]}
    (event,) = lifecycle.append(task, R.REQUEST_OUTPUT, 0, output, "T", bounds)
    plain = msgspec.structs.replace(event, data=output)
    assert encode(event) == encode(plain)
    assert msgspec.json.decode(encode(event))["data"] == output
    assert task.requests[0].output == [output]
