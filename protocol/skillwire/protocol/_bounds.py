"""How much output a Task holds: the limits, and the sizes that enforce them.

A Task holds per request at most ``max_outputs`` outputs and per task at most
``max_output_bytes`` of encoded outputs (the JSON of each output, as it would be sent). Past
either limit the oldest outputs leave the Task (never the log), oldest first across all its
requests, and ``requests[i].outputs_dropped`` counts them. An output is never cut: one that
alone is larger than ``max_output_bytes`` leaves the Task whole, like any other, and the deltas
still sent to it are stored and delivered but no longer applied.

``OutputBounds`` keeps the sizes of the outputs a Task holds, so that checking the limits costs
nothing per event but the size of what changed. The lifecycle calls it; a backbone keeps one per
task beside the task it describes.
"""

from __future__ import annotations

from collections import deque

from ._models import Task

__all__ = ["DEFAULT_MAX_OUTPUTS", "DEFAULT_MAX_OUTPUT_BYTES", "OutputBounds"]

DEFAULT_MAX_OUTPUTS = 1_000
DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024


class OutputBounds:
    """The output limits of one task and the sizes of the outputs it holds."""

    __slots__ = ("_emitted", "_held", "_total", "max_output_bytes", "max_outputs")

    def __init__(
        self,
        max_outputs: int = DEFAULT_MAX_OUTPUTS,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    ) -> None:
        self.max_outputs = max_outputs
        self.max_output_bytes = max_output_bytes
        # request index -> [emission order, encoded size] of each output held, oldest first.
        self._held: dict[int, deque[list[int]]] = {}
        self._emitted = 0
        self._total = 0

    @property
    def total_bytes(self) -> int:
        """Encoded bytes of every output the task holds."""
        return self._total

    def reset(self, index: int) -> None:
        """Request ``index`` starts (again): it holds no output."""
        held = self._held.pop(index, None)
        if held:
            self._total -= sum(size for _, size in held)

    def added(self, task: Task, index: int, size: int) -> None:
        """An output of ``size`` bytes was appended to request ``index``: enforce the limits."""
        self._emitted += 1
        self._held.setdefault(index, deque()).append([self._emitted, size])
        self._total += size
        held = self._held[index]
        while len(held) > self.max_outputs:
            self._drop(task, index)
        self._enforce_bytes(task)

    def grew(self, task: Task, index: int, position: int, by: int) -> None:
        """The output at ``position`` of request ``index`` grew by ``by`` encoded bytes."""
        self._held[index][position][1] += by
        self._total += by
        self._enforce_bytes(task)

    def _enforce_bytes(self, task: Task) -> None:
        while self._total > self.max_output_bytes:
            oldest = min(
                (held[0][0], i) for i, held in self._held.items() if held
            )  # never empty here: a positive total means some output is held
            self._drop(task, oldest[1])

    def _drop(self, task: Task, index: int) -> None:
        _, size = self._held[index].popleft()
        self._total -= size
        request = task.requests[index]
        del request.output[0]
        request.outputs_dropped += 1
