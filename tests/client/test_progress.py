"""Progress bars: what a terminal shows for a task's events."""

from __future__ import annotations

import io
from typing import Any

from skillwire.client import Event, EventType
from skillwire.client._progress import ProgressBars
from tests.client.helpers import task_json


def ev(seq: int, type_: EventType, data: Any = None, index: int | None = None) -> Event:
    return Event(task_id="tsk_p", seq=seq, type=type_, time="t", data=data or {}, index=index)


class Utf8(io.StringIO):
    encoding = "utf-8"


def test_bars_follow_progress_outputs_and_failures() -> None:
    """Each sub-request gets a bar with its percentage, status, outputs and last message."""
    out = Utf8()
    bars = ProgressBars(out, "demo/countdown", width=10, min_interval=0.0)
    bars.update(ev(1, EventType.TASK_QUEUED))
    bars.update(ev(2, EventType.TASK_STARTED))
    bars.update(ev(3, EventType.REQUEST_STARTED, index=0))
    bars.update(ev(4, EventType.REQUEST_PROGRESS, {"progress": 0.5, "message": "tick 1 of 2"}, 0))
    bars.update(ev(5, EventType.REQUEST_OUTPUT, {"type": "tick", "i": 1}, 0))
    bars.update(ev(6, EventType.REQUEST_FAILED, {"error": {"code": "X", "message": "boom"}}, 1))
    lines = bars.lines()
    assert lines[0].startswith("demo/countdown tsk_p running")
    assert lines[1] == "  [0] █████░░░░░  50% running   1 out  tick 1 of 2"
    assert lines[2].startswith("  [1] ░░░░░░░░░░   0% failed")
    assert lines[2].endswith("boom")


def test_terminal_event_fills_from_the_task_and_redraws_in_place() -> None:
    """The terminal event's Task sets the final state; redraws move the cursor back up."""
    out = io.StringIO()
    bars = ProgressBars(out, "t", width=4, min_interval=0.0)
    bars.update(ev(1, EventType.REQUEST_STARTED, index=0))
    task = task_json("tsk_p", 2, "completed")
    task["requests"] = [{"index": 0, "status": "completed", "progress": 1.0, "output": [1, 2]}]
    bars.update(ev(2, EventType.TASK_COMPLETED, task))
    text = out.getvalue()
    assert "\x1b[2F" in text  # back over the header and one bar
    assert bars.lines()[1] == "  [0] #### 100% completed 2 out"
    assert "completed" in bars.lines()[0]


def test_redraws_are_throttled() -> None:
    """Within min_interval only the first update and the terminal event draw."""
    now = [0.0]
    out = io.StringIO()
    bars = ProgressBars(out, "t", min_interval=1.0, clock=lambda: now[0])
    for seq in range(1, 50):
        bars.update(ev(seq, EventType.REQUEST_PROGRESS, {"progress": seq / 50}, 0))
    assert out.getvalue().count("\n") == 2
    bars.update(ev(50, EventType.TASK_COMPLETED, task_json("tsk_p", 50, "completed")))
    assert out.getvalue().count("\n") == 4
