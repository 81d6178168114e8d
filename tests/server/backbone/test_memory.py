"""The memory backbone's per-task record: what a running task nobody follows holds."""

from __future__ import annotations

import sys

from skillwire.protocol import EncodedEvent, EventType, decode_event, format_time, lifecycle
from skillwire.server.backbone import MemoryBackbone


async def _running(backbone: MemoryBackbone, task_id: str) -> None:
    task, first = lifecycle.new_task(task_id, "lab", "s", 1, {}, format_time(0))
    await backbone.create_task(task, first, owner="u", webhook_url=None, work=[])
    assert await backbone.append(task_id, EventType.REQUEST_STARTED, 0, {})


async def test_a_running_task_holds_no_bounds_nor_listener_list_until_used() -> None:
    """A running task whose skill emitted nothing and nobody follows has neither its output
    bounds nor a listener list; its first output and its first listener make them."""
    backbone = MemoryBackbone()
    await _running(backbone, "tsk_idle")
    record = backbone._records["tsk_idle"]
    assert record.bounds is None and record.listeners is None
    heard: list[EncodedEvent] = []
    undo = await backbone.listen("tsk_idle", heard.append)
    await backbone.append("tsk_idle", EventType.REQUEST_OUTPUT, 0, {"i": 0})
    assert record.bounds is not None and record.listeners == [heard.append]
    assert [e.type for e in heard] == [EventType.REQUEST_OUTPUT]
    undo()
    assert backbone.listener_count() == 0


async def test_bounds_made_at_the_first_output_bound_the_outputs() -> None:
    """The bounds made late hold the task to ``max_outputs`` as before, and a request that
    starts again (redelivered) counts its outputs afresh."""
    backbone = MemoryBackbone(max_outputs=2)
    await _running(backbone, "tsk_b")
    for i in range(3):
        await backbone.append("tsk_b", EventType.REQUEST_OUTPUT, 0, {"i": i})
    stored = await backbone.get_task("tsk_b")
    assert stored is not None
    request = stored.task.requests[0]
    assert request.output == [{"i": 1}, {"i": 2}] and request.outputs_dropped == 1
    await backbone.append("tsk_b", EventType.REQUEST_STARTED, 0, {})
    for i in range(2):
        await backbone.append("tsk_b", EventType.REQUEST_OUTPUT, 0, {"i": 10 + i})
    stored = await backbone.get_task("tsk_b")
    assert stored is not None
    request = stored.task.requests[0]
    assert request.output == [{"i": 10}, {"i": 11}] and request.outputs_dropped == 0


async def test_a_stored_task_holds_no_links_and_every_answer_has_them() -> None:
    """The record's Task shares one empty ``UNLINKED`` value instead of two strings; the
    task read back, listed, and in its terminal event carries its links all the same."""
    backbone = MemoryBackbone()
    await _running(backbone, "tsk_links")
    assert backbone._records["tsk_links"].task.links is lifecycle.UNLINKED
    expected = lifecycle.task_links("tsk_links")
    assert expected.self == "/api/v1/tasks/tsk_links"
    stored = await backbone.get_task("tsk_links")
    assert stored is not None and stored.task.links == expected
    listed, _ = await backbone.list_tasks(
        owner="u", status=None, app=None, skill=None, limit=10, offset=0
    )
    assert [t.links for t in listed] == [expected]
    cancelled = await backbone.cancel("tsk_links")
    assert cancelled.links == expected
    log = await backbone.read_events("tsk_links", 0, 10)
    assert log is not None
    terminal = decode_event(log.events[-1].json)
    assert terminal.type == EventType.TASK_CANCELLED
    assert terminal.data["links"] == {"self": expected.self, "events": expected.events}


async def test_the_log_keeps_events_smaller_than_a_reader_gets_them() -> None:
    """Each log entry holds the event's JSON, seq and type only (no room for frames, which
    readers cache on events of their own): smaller than the ``EncodedEvent`` a reader gets."""
    backbone = MemoryBackbone()
    await _running(backbone, "tsk_log")
    entries = backbone._records["tsk_log"].log
    first = await backbone.read_events("tsk_log", 0, 10)
    again = await backbone.read_events("tsk_log", 0, 10)
    assert first is not None and again is not None
    assert [e.json for e in first.events] == [e.json for e in again.events]
    assert [e.type for e in first.events] == ["task.queued", "task.started", "request.started"]
    assert first.events[0].sse and again.events[0]._sse is None  # frames stay the reader's
    assert all(e.json is f.json for e, f in zip(entries, first.events, strict=True))
    assert sys.getsizeof(entries[0]) < sys.getsizeof(first.events[0])
