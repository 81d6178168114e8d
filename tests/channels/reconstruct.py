"""A subscriber's view of a task's outputs, rebuilt from the events it received.

What a client does with streamed outputs: a ``task.snapshot`` sets every request's outputs
(and where they start: ``outputs_dropped``), ``request.started`` starts a request afresh,
``request.output`` adds one, ``request.delta`` grows one (unless it left the Task). Every event
must come exactly once, in seq order; ``matches`` compares the result with a final Task.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

TERMINAL = {"task.completed", "task.partial", "task.failed", "task.cancelled"}


@dataclass
class Request:
    base: int = 0  # the number of the first output held (outputs dropped before it)
    outputs: list[Any] = field(default_factory=list)


@dataclass
class Reconstruction:
    requests: dict[int, Request] = field(default_factory=dict)
    last_seq: int = 0
    final: dict[str, Any] | None = None  # the Task of the terminal event, once received

    @property
    def finished(self) -> bool:
        return self.final is not None

    def apply(self, event: dict[str, Any]) -> None:
        """Apply one event; fails on a gap, a duplicate or an event after the end."""
        assert not self.finished, f"event after the end: {event['seq']}"
        kind = event["type"]
        if kind == "task.snapshot":
            assert event["seq"] >= self.last_seq, (event["seq"], self.last_seq)
            self.last_seq = event["seq"]
            task = event["data"]
            assert task["last_seq"] == event["seq"]
            self.requests = {
                r["index"]: Request(r["outputs_dropped"], copy.deepcopy(r["output"]))
                for r in task["requests"]
            }
            if task["status"] in {"completed", "partial", "failed", "cancelled"}:
                self.final = task
            return
        assert event["seq"] == self.last_seq + 1, f"seq {event['seq']} after {self.last_seq}"
        self.last_seq = event["seq"]
        index = event.get("index")
        if kind == "request.started":
            self.requests[index] = Request()
        elif kind == "request.output":
            self.requests.setdefault(index, Request()).outputs.append(copy.deepcopy(event["data"]))
        elif kind == "request.delta":
            delta = event["data"]
            request = self.requests[index]
            position = delta["output"] - request.base
            if position >= 0:  # else that output left the Task before this view began
                target = request.outputs[position]
                target[delta["field"]] += delta["append"]
        elif kind in TERMINAL:
            self.final = event["data"]

    def matches(self, task: dict[str, Any]) -> None:
        """Assert that the outputs rebuilt equal the Task's, character for character."""
        for state in task["requests"]:
            mine = self.requests.get(state["index"], Request())
            dropped = state["outputs_dropped"]
            assert dropped >= mine.base, (state["index"], dropped, mine.base)
            assert mine.outputs[dropped - mine.base :] == state["output"], state["index"]
