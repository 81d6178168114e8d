"""Streamed text printed to a terminal as it grows (``skillwire-client call --stream``)."""

from __future__ import annotations

from typing import TextIO

from skillwire.protocol import Event

from ._outputs import TaskOutputs, TextCursor

__all__ = ["LiveText"]

Key = tuple[int, int, str]  # request index, output number, field


class LiveText:
    """Writes the text of every streamed output to ``out`` as its deltas arrive.

    Each streamed output's text is written once, in order (a snapshot met on a resume
    writes only what is new); when the text of another output (another request, a tool
    call's arguments) takes over, it starts on a new line under a ``[index] field:`` label.
    """

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.outputs = TaskOutputs()
        self.cursors: dict[Key, TextCursor] = {}
        self.current: Key | None = None

    @property
    def started(self) -> bool:
        """Has any text been written?"""
        return self.current is not None

    def update(self, event: Event) -> None:
        appended = self.outputs.apply(event)
        if appended is None:
            for key, cursor in self.cursors.items():  # a snapshot may hold more text
                self._write(key, cursor.advance())
            return
        key = (appended.index, appended.n, appended.field)
        if key not in self.cursors:
            self.cursors[key] = TextCursor(self.outputs, *key)
        self._write(key, self.cursors[key].advance(appended))

    def _write(self, key: Key, chunk: str) -> None:
        if not chunk:
            return
        if key != self.current:
            if self.current is not None:
                self.out.write("\n")
            if self.current is not None or key != (0, 0, "text"):
                index, n, field = key
                self.out.write(f"[{index}] {field}: " if n == 0 else f"[{index}.{n}] {field}: ")
            self.current = key
        self.out.write(chunk)
        self.out.flush()

    def finish(self) -> None:
        """End the text with a newline, once any was written."""
        if self.current is not None:
            self.out.write("\n")
            self.out.flush()
