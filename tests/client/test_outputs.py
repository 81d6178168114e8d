"""TaskOutputs and TextCursor on hand-made event sequences: outputs grown by deltas, kept exact."""

from __future__ import annotations

import copy
import io
import time
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from skillwire.client import Event, TaskOutputs
from skillwire.client._livetext import LiveText
from skillwire.client._outputs import TextCursor
from tests.client.helpers import task_json
from tests.conftest import scaled

TASK = "tsk_outputs"


def ev(seq: int, type_: str, data: Any = None, index: int | None = 0) -> Event:
    """An event as the client decodes it (``request.*`` events carry ``index``)."""
    return Event(
        task_id=TASK,
        seq=seq,
        type=type_,  # type: ignore[arg-type]
        time="2026-12-05T00:00:00.000000Z",
        data={} if data is None else data,
        index=index if type_.startswith("request.") else None,
    )


def delta(seq: int, n: int, text: str, field: str = "text", index: int = 0) -> Event:
    return ev(seq, "request.delta", {"output": n, "field": field, "append": text}, index)


def task_with(
    last_seq: int, requests: list[dict[str, Any]], status: str = "running"
) -> dict[str, Any]:
    """A Task as JSON holding ``requests`` (index, output, outputs_dropped)."""
    task = task_json(TASK, last_seq, status)
    task["requests"] = [
        {"status": "running", "progress": 0.0, "result": None, "error": None, **r} for r in requests
    ]
    return task


def test_deltas_grow_the_output_they_name() -> None:
    """request.output then deltas: the output's field is everything appended, in order."""
    outputs = TaskOutputs()
    emitted = {"type": "text", "text": ""}
    for event in [
        ev(1, "request.started"),
        ev(2, "request.output", emitted),
        delta(3, 0, "Hel"),
        delta(4, 0, "lo"),
    ]:
        outputs.apply(event)
    assert outputs.output(0) == [{"type": "text", "text": "Hello"}]
    assert outputs.text() == "Hello"
    assert emitted == {"type": "text", "text": ""}  # the event's own data is left alone


def test_two_outputs_stream_at_once() -> None:
    """An answer and a tool call's arguments grow side by side, each on its own field."""
    outputs = TaskOutputs()
    events = [
        ev(1, "request.output", {"type": "message", "text": ""}),
        ev(2, "request.output", {"type": "tool_call", "id": "c1", "arguments": ""}),
        delta(3, 0, "Let me"),
        delta(4, 1, '{"a', field="arguments"),
        delta(5, 0, " check."),
        delta(6, 1, '": 1}', field="arguments"),
    ]
    for event in events:
        outputs.apply(event)
    assert outputs.text() == "Let me check."
    assert outputs.text(output=1, field="arguments") == '{"a": 1}'
    assert outputs.text(field="arguments") == '{"a": 1}'  # the first output that has it


def test_a_late_snapshot_resets_the_outputs() -> None:
    """A task.snapshot replaces what was built, then later deltas grow the snapshot's text."""
    outputs = TaskOutputs()
    outputs.apply(ev(1, "request.output", {"type": "text", "text": ""}))
    outputs.apply(delta(2, 0, "stale"))
    snapshot = task_with(7, [{"index": 0, "output": [{"type": "text", "text": "Hello"}]}])
    outputs.apply(ev(7, "task.snapshot", snapshot, index=None))
    outputs.apply(delta(8, 0, ", world"))
    assert outputs.text() == "Hello, world"
    assert snapshot["requests"][0]["output"][0]["text"] == "Hello"


def test_output_numbers_count_outputs_that_left_the_task() -> None:
    """Output n sits at output[n - outputs_dropped]; a delta to a dropped output is ignored."""
    held = [{"type": "text", "text": "seven"}, {"type": "text", "text": "eight"}]
    outputs = TaskOutputs(task_with(20, [{"index": 0, "output": held, "outputs_dropped": 7}]))
    assert outputs.apply(delta(21, 3, "gone")) is None
    outputs.apply(delta(22, 8, "!"))
    outputs.apply(ev(23, "request.output", {"type": "text", "text": "nine"}))
    outputs.apply(delta(24, 9, "?"))
    assert [o["text"] for o in outputs.output(0)] == ["seven", "eight!", "nine?"]
    assert outputs.request(0).count == 10
    assert outputs.request(0).get(8) == {"type": "text", "text": "eight!"}
    assert outputs.request(0).get(3) is None


def test_request_started_starts_the_request_afresh() -> None:
    """A re-run (request.started) resets the request's outputs and outputs_dropped."""
    held = [{"type": "text", "text": "old"}]
    outputs = TaskOutputs(task_with(5, [{"index": 0, "output": held, "outputs_dropped": 2}]))
    outputs.apply(ev(6, "request.started"))
    outputs.apply(ev(7, "request.output", {"type": "text", "text": ""}))
    outputs.apply(delta(8, 0, "new"))
    assert outputs.output(0) == [{"type": "text", "text": "new"}]
    assert outputs.request(0).outputs_dropped == 0


def test_deltas_that_cannot_apply_change_nothing() -> None:
    """A delta to a missing output, or to a field that is not a string, is not applied."""
    outputs = TaskOutputs()
    outputs.apply(ev(1, "request.output", {"type": "tick", "i": 1}))
    assert outputs.apply(delta(2, 0, "x", field="i")) is None
    assert outputs.apply(delta(3, 0, "x")) is None
    assert outputs.apply(delta(4, 5, "x")) is None
    assert outputs.output(0) == [{"type": "tick", "i": 1}]
    assert outputs.text() == ""


def test_replayed_events_are_applied_once() -> None:
    """Events at or below the last seq applied (a replay) are ignored."""
    outputs = TaskOutputs()
    for event in [ev(1, "request.output", {"text": ""}), delta(2, 0, "a"), delta(2, 0, "a")]:
        outputs.apply(event)
    outputs.apply(delta(1, 0, "b"))
    assert outputs.text() == "a"


def test_the_terminal_task_is_the_last_word() -> None:
    """A terminal event's Task replaces the outputs (it holds the final values)."""
    outputs = TaskOutputs()
    outputs.apply(ev(1, "request.output", {"type": "text", "text": "partial"}))
    final = task_with(3, [{"index": 0, "output": [{"type": "text", "text": "final"}]}])
    outputs.apply(ev(3, "task.completed", final, index=None))
    assert outputs.text() == "final"
    assert outputs.last_seq == 3


def test_many_deltas_cost_linear_time() -> None:
    """200,000 appends to one output apply in well under a second each 100,000 (no quadratic
    re-copy of the text on each delta)."""
    outputs = TaskOutputs()
    outputs.apply(ev(1, "request.output", {"type": "text", "text": ""}))
    started = time.perf_counter()
    for seq in range(2, 200_002):
        outputs.apply(delta(seq, 0, "word "))
    text = outputs.text()
    assert len(text) == 5 * 200_000
    assert time.perf_counter() - started < scaled(4)


# -- TextCursor: the characters stream_text hands out -------------------------------------


def chunks_of(events: list[Event], outputs: TaskOutputs | None = None, **follow: Any) -> str:
    outputs = outputs or TaskOutputs()
    cursor = TextCursor(outputs, **follow)
    out = [cursor.advance()]
    for event in events:
        out.append(cursor.advance(outputs.apply(event)))
    return "|".join(c for c in out if c)


def test_cursor_hands_out_each_delta() -> None:
    """Each delta's text comes out as one chunk, in order."""
    events = [ev(1, "request.output", {"type": "text", "text": "A"}), delta(2, 0, "b")]
    events.append(delta(3, 0, "c"))
    assert chunks_of(events) == "A|b|c"


def test_cursor_after_a_snapshot_hands_out_only_what_is_new() -> None:
    """A snapshot that holds more than was handed out yields just the rest, once."""
    events = [
        ev(1, "request.output", {"type": "text", "text": ""}),
        delta(2, 0, "Hel"),
        ev(
            9, "task.snapshot", task_with(9, [{"index": 0, "output": [{"text": "Hello, w"}]}]), None
        ),
        delta(10, 0, "orld"),
    ]
    assert chunks_of(events) == "Hel|lo, w|orld"


def test_cursor_after_a_rerun_repeats_nothing() -> None:
    """A re-run that streams the same text again yields only characters past those sent."""
    events = [
        ev(1, "request.started"),
        ev(2, "request.output", {"type": "text", "text": ""}),
        delta(3, 0, "Hello"),
        ev(4, "request.started"),
        ev(5, "request.output", {"type": "text", "text": ""}),
        delta(6, 0, "Hel"),
        delta(7, 0, "lo, "),
        delta(8, 0, "you"),
    ]
    assert chunks_of(events) == "Hello|, |you"


def test_cursor_follows_the_chosen_output() -> None:
    """output= and field= choose which streamed output is followed."""
    events = [
        ev(1, "request.output", {"type": "message", "text": "hi"}),
        ev(2, "request.output", {"type": "tool_call", "arguments": "{"}),
        delta(3, 1, "}", field="arguments"),
        delta(4, 0, "!"),
    ]
    assert chunks_of(events, output=1, field="arguments") == "{|}"
    assert chunks_of(events) == "hi|!"


# -- property: any join point, any resume, the same text ----------------------------------

Step = tuple[str, int, str]  # ("output" | "delta", request index, text)


def run_model(steps: list[Step]) -> tuple[list[Event], list[dict[str, Any]]]:
    """The events of ``steps`` and the Task (as JSON) after each event, as the server keeps it."""
    requests: dict[int, list[dict[str, Any]]] = {0: [], 1: []}
    events: list[Event] = []
    tasks: list[dict[str, Any]] = [task_with(0, [])]
    for kind, index, text in steps:
        seq = len(events) + 1
        if kind == "output" or not requests[index]:
            item = {"type": "text", "text": text}
            requests[index].append(item)
            events.append(ev(seq, "request.output", dict(item), index))
        else:
            n = len(requests[index]) - 1 - (len(text) % len(requests[index]))
            requests[index][n]["text"] += text
            events.append(delta(seq, n, text, index=index))
        held = [{"index": i, "output": copy.deepcopy(o)} for i, o in requests.items()]
        tasks.append(task_with(seq, held))
    return events, tasks


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["output", "delta", "delta", "delta"]),
            st.integers(0, 1),
            st.text(min_size=1, max_size=4),
        ),
        min_size=1,
        max_size=40,
    ),
    data=st.data(),
)
def test_any_join_and_resume_reconstructs_the_task(steps: list[Step], data: Any) -> None:
    """Joining at any seq with a snapshot, and meeting snapshots anywhere later (resumes past
    the log), rebuilds every output and hands out each followed text exactly once."""
    events, tasks = run_model(steps)
    final = tasks[-1]
    join = data.draw(st.integers(0, len(events)))
    resumes = set(data.draw(st.lists(st.integers(join + 1, max(join + 1, len(events))))))
    outputs = TaskOutputs(tasks[join])
    cursors = [TextCursor(outputs, index) for index in (0, 1)]
    handed = [[c.advance()] for c in cursors]
    for event in events[join:]:
        if event.seq in resumes:
            event = ev(event.seq, "task.snapshot", tasks[event.seq], index=None)
        appended = outputs.apply(event)
        for cursor, out in zip(cursors, handed, strict=True):
            out.append(cursor.advance(appended))
    for index in (0, 1):
        expected = final["requests"][index]["output"]
        assert outputs.output(index) == expected
        first = expected[0]["text"] if expected else ""
        assert "".join(handed[index]) == first


# -- LiveText: what `skillwire-client call --stream` prints in a terminal -----------------


def test_live_text_prints_each_character_once_with_labels_between_outputs() -> None:
    """The answer is printed as it grows; a resume's snapshot adds only what is new; another
    output's text starts on its own labelled line."""
    out = io.StringIO()
    live = LiveText(out)
    snapshot = task_with(5, [{"index": 0, "output": [{"type": "text", "text": "Hello, w"}]}])
    for event in [
        ev(1, "request.output", {"type": "text", "text": ""}),
        delta(2, 0, "Hel"),
        delta(3, 0, "lo"),
        ev(5, "task.snapshot", snapshot, index=None),
        delta(6, 0, "orld"),
        ev(7, "request.output", {"type": "tool_call", "arguments": ""}),
        delta(8, 1, "{}", field="arguments"),
    ]:
        live.update(event)
    live.finish()
    assert out.getvalue() == "Hello, world\n[0.1] arguments: {}\n"
