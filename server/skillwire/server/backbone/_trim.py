"""Trimming an in-memory log: shared by the memory backbone's task logs and session logs."""

from __future__ import annotations

from typing import Protocol, TypeVar

__all__ = ["trim_log"]


class _Entry(Protocol):
    @property
    def seq(self) -> int: ...
    @property
    def json(self) -> bytes: ...


E = TypeVar("E", bound=_Entry)


class _Log(Protocol[E]):
    log: list[E]
    log_bytes: int
    first_seq: int


def trim_log(record: _Log[E], max_events: int, max_log_bytes: int) -> None:
    """Drop the oldest entries past ``max_events`` or ``max_log_bytes``, in chunks (a quarter
    of the limit at a time: amortised O(1) per append), always keeping the newest one."""
    log = record.log
    drop = 0
    overflow = len(log) - max_events
    if overflow > max_events // 4:
        drop = overflow
    if record.log_bytes > max_log_bytes:
        target = max_log_bytes * 3 // 4
        kept = record.log_bytes - sum(len(e.json) for e in log[:drop])
        while kept > target and drop < len(log) - 1:
            kept -= len(log[drop].json)
            drop += 1
    if drop:
        record.log_bytes -= sum(len(e.json) for e in log[:drop])
        del log[:drop]
        record.first_seq = log[0].seq
