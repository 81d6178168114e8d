"""Outputs written behind the skill on a shared backbone: batched, in order, never lost.

On Redis a skill's emit queues its event and returns; one flush at a time stores what was
queued meanwhile in one script call. These tests drive a WorkerPool on a real Redis, and
the context against a backbone that fails on demand.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from skillwire.protocol import (
    BackboneUnavailable,
    EncodedEvent,
    EventType,
    SkillError,
    decode_event,
    format_time,
    lifecycle,
)
from skillwire.server import App, Context
from skillwire.server.backbone import MemoryBackbone, WorkItem
from skillwire.server.backbone.redis import RedisBackbone
from skillwire.server.engine import Registry, WorkerPool
from skillwire.server.engine._context import MERGE_LIMIT, WRITE_BEHIND_LIMIT, Discarded
from tests.conftest import RedisServer, eventually, scaled

burst = App("burst")


@burst.skill()
async def many(ctx: Context, n: int) -> None:
    for i in range(n):
        await ctx.output({"i": i})


@burst.skill()
async def then_fail(ctx: Context, n: int) -> None:
    for i in range(n):
        await ctx.output({"i": i})
    raise SkillError("BROKEN", "after the outputs")


async def _appends(url: str) -> int:
    client = aioredis.Redis.from_url(url)
    try:
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def _run(backbone: RedisBackbone, task_id: str, skill: str, n: int) -> list[Any]:
    task, first = lifecycle.new_task(task_id, "burst", skill, 1, {}, format_time(0))
    item = WorkItem(task_id, "burst", skill, "u", [0], [{"n": n}])
    await backbone.create_task(task, first, owner="u", webhook_url=None, work=[item])
    pool = WorkerPool(
        backbone, Registry([burst], max_requests=5), concurrency=4, default_timeout=30
    )
    await pool.start()
    try:
        deadline = time.monotonic() + scaled(10)
        while True:
            stored = await backbone.get_task(task_id)
            if stored is not None and stored.task.status in lifecycle.TERMINAL_TASK_STATUSES:
                break
            if time.monotonic() > deadline:
                pytest.fail("the task never ended")
            await asyncio.sleep(0.025)
    finally:
        await pool.stop()
    log = await backbone.read_events(task_id, 0, 10_000)
    assert log is not None
    return [decode_event(e.json) for e in log.events]


@pytest.fixture
async def backbone(redis_server: RedisServer) -> AsyncIterator[RedisBackbone]:
    redis_server.flush()
    backbone = RedisBackbone(redis_server.url)
    await backbone.start()
    try:
        yield backbone
    finally:
        await backbone.close()


async def test_a_burst_of_outputs_is_stored_in_order_in_few_round_trips(
    backbone: RedisBackbone, redis_server: RedisServer
) -> None:
    """2,000 outputs emitted in a tight loop: all stored, in order, gap-free, with far fewer
    append scripts than outputs; a live listener receives each once, in order."""
    received: list[EncodedEvent] = []
    await backbone.listen("tsk_burst", received.append)
    before = await _appends(redis_server.url)
    events = await _run(backbone, "tsk_burst", "many", 2000)
    scripts = await _appends(redis_server.url) - before
    outputs = [e.data["i"] for e in events if e.type == "request.output"]
    assert outputs == list(range(2000))
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[-1].type == "task.completed"
    assert scripts < 500, f"{scripts} append/read scripts for 2,000 outputs"
    await eventually(lambda: len(received) >= len(events) - 1)  # all but task.queued
    assert [e.seq for e in received] == list(range(2, len(events) + 1))


async def test_outputs_come_before_the_failure_that_follows_them(backbone: RedisBackbone) -> None:
    """A skill that emits and then raises: every output is stored, then request.failed."""
    events = await _run(backbone, "tsk_fails", "then_fail", 300)
    types = [e.type for e in events]
    assert types.count("request.output") == 300
    assert types[-2:] == ["request.failed", "task.failed"]
    assert max(i for i, t in enumerate(types) if t == "request.output") < types.index(
        "request.failed"
    )


class FailingBackbone(MemoryBackbone):
    """Stores in batches like Redis would, and fails or refuses when told to."""

    batches_appends = True

    def __init__(self) -> None:
        super().__init__()
        self.fail = False
        self.batches: list[int] = []

    async def append_batch(
        self, task_id: str, index: int, entries: list[tuple[EventType, Any]]
    ) -> tuple[int, list[EncodedEvent]]:
        await asyncio.sleep(0.01)  # a round trip: emits queue up meanwhile
        if self.fail:
            raise BackboneUnavailable("redis unavailable: gone")
        self.batches.append(len(entries))
        return await super().append_batch(task_id, index, entries)


async def _started(backbone: MemoryBackbone | RedisBackbone, task_id: str) -> Context:
    task, first = lifecycle.new_task(task_id, "burst", "many", 1, {}, format_time(0))
    await backbone.create_task(task, first, owner="u", webhook_url=None, work=[])
    assert await backbone.append(task_id, EventType.REQUEST_STARTED, 0, {})
    return Context(backbone, task_id, 0, "burst", "many", "u")


async def test_a_store_that_fails_surfaces_at_the_next_emit_and_at_the_flush() -> None:
    """Nothing is silently dropped: the failure reaches the skill and the worker's flush."""
    backbone = FailingBackbone()
    ctx = await _started(backbone, "tsk_down")
    backbone.fail = True
    await ctx.output({"i": 0})  # queued; its flush fails in the background
    with pytest.raises(BackboneUnavailable):
        await ctx.flush()
    with pytest.raises(BackboneUnavailable):
        await ctx.output({"i": 1})


async def test_emits_queued_meanwhile_share_one_step_and_a_cancel_discards_the_rest() -> None:
    """Emits during a round trip go out together; once the task is cancelled the skill is
    told (Discarded) and nothing more is stored."""
    backbone = FailingBackbone()
    ctx = await _started(backbone, "tsk_cut")
    for i in range(50):
        await ctx.output({"i": i})
    await ctx.flush()
    assert sum(backbone.batches) == 50 and len(backbone.batches) <= 3
    await backbone.cancel("tsk_cut")
    await ctx.output({"i": 50})
    with pytest.raises(Discarded):
        await ctx.flush()
    with pytest.raises(Discarded):
        await ctx.output({"i": 51})
    stored = await backbone.get_task("tsk_cut")
    assert stored is not None and len(stored.task.requests[0].output) == 50


async def test_a_stopped_sub_request_leaves_no_late_outputs() -> None:
    """When the worker stops a sub-request (its work is requeued, or the task cancelled), the
    events still on their way are dropped: none lands after the run that replaces it began."""
    backbone = FailingBackbone()
    ctx = await _started(backbone, "tsk_stop")
    for i in range(50):
        await ctx.output({"i": i})
    ctx.abandon()
    await asyncio.sleep(0.05)
    with pytest.raises(Discarded):
        await ctx.flush()
    stored = await backbone.get_task("tsk_stop")
    assert stored is not None and stored.task.requests[0].output == []
    assert backbone.batches == []


async def _hello_with_a_call_between(
    backbone: MemoryBackbone | RedisBackbone, task_id: str
) -> list[Any]:
    """Appends "He", "l", "lo" to a text output, "{}" to a tool call's arguments, then "!" and
    "" to the text, behind a flushed pair of outputs; the deltas the log then holds."""
    ctx = await _started(backbone, task_id)
    answer = await ctx.output({"type": "text", "text": ""})
    call = await ctx.output({"type": "tool_call", "arguments": ""})
    await ctx.flush()
    for token in ["He", "l", "lo"]:
        await ctx.append(answer, "text", token)
    await ctx.append(call, "arguments", "{}")
    await ctx.append(answer, "text", "!")
    await ctx.append(answer, "text", "")  # nothing to send
    await ctx.flush()
    log = await backbone.read_events(task_id, 0, 100)
    assert log is not None
    return [decode_event(e.json).data for e in log.events if e.type == "request.delta"]


async def test_consecutive_appends_to_one_output_merge_never_reorder() -> None:
    """Appends queued while a batch is stored merge into one delta per run of the same output
    and field; an append to another output (or an output) between them keeps them apart."""
    backbone = FailingBackbone()
    deltas = await _hello_with_a_call_between(backbone, "tsk_merge")
    assert deltas == [
        {"output": 0, "field": "text", "append": "Hello"},
        {"output": 1, "field": "arguments", "append": "{}"},
        {"output": 0, "field": "text", "append": "!"},
    ]
    stored = await backbone.get_task("tsk_merge")
    assert stored is not None
    assert stored.task.requests[0].output == [
        {"type": "text", "text": "Hello!"},
        {"type": "tool_call", "arguments": "{}"},
    ]


async def test_merged_appends_stay_bounded_while_the_store_lags() -> None:
    """A skill appending far faster than the store keeps up: merged deltas stop growing at
    MERGE_LIMIT characters, the skill waits once WRITE_BEHIND_LIMIT are on their way, and the
    text arrives whole and in order."""
    backbone = FailingBackbone()
    ctx = await _started(backbone, "tsk_lag")
    answer = await ctx.output({"type": "text", "text": ""})
    token = "abcdefgh"
    for _ in range(40_000):  # 320,000 characters, never awaiting anything but the appends
        await ctx.append(answer, "text", token)
        behind = ctx._behind
        assert behind is not None
        assert len(behind._queued) <= WRITE_BEHIND_LIMIT
        assert behind._merged <= MERGE_LIMIT  # the newest delta, its merged appends included
    await ctx.flush()
    stored = await backbone.get_task("tsk_lag")
    assert stored is not None
    assert stored.task.requests[0].output == [{"type": "text", "text": token * 40_000}]


async def test_lone_events_of_many_sub_requests_start_no_task_each(
    backbone: RedisBackbone,
) -> None:
    """Fifty sub-requests each emit one output in the same turn of the loop: their flushes go
    into the batcher's next round trip with no task each (only the batcher's own few start),
    and every output is stored in its own task."""
    ctxs = [await _started(backbone, f"tsk_lone{i}") for i in range(50)]
    await ctxs[0].output({"i": -1})  # the first append loads the script
    await ctxs[0].flush()
    before = asyncio.all_tasks()
    for ctx in ctxs:
        await ctx.output({"i": 0})
    started = asyncio.all_tasks() - before
    assert 1 <= len(started) <= 4, [t.get_name() for t in started]
    for ctx in ctxs:
        await ctx.flush()
    for i, ctx in enumerate(ctxs):
        stored = await backbone.get_task(ctx.task_id)
        assert stored is not None
        assert stored.task.requests[0].output == ([{"i": -1}] if i == 0 else []) + [{"i": 0}]


async def test_a_lone_event_abandoned_before_its_round_trip_is_not_stored(
    backbone: RedisBackbone,
) -> None:
    """A sub-request stopped in the same turn as its emit: the append queued for the next
    round trip is withdrawn, and nothing lands."""
    ctx = await _started(backbone, "tsk_withdrawn")
    await ctx.output({"i": 0})
    await ctx.flush()
    await ctx.output({"i": 1})
    ctx.abandon()
    with pytest.raises(Discarded):
        await ctx.flush()
    await asyncio.sleep(0.05)  # a round trip that would have carried it
    stored = await backbone.get_task("tsk_withdrawn")
    assert stored is not None and stored.task.requests[0].output == [{"i": 0}]


async def test_a_batch_sent_without_its_events_still_wakes_the_webhook_dispatchers(
    backbone: RedisBackbone,
) -> None:
    """append_batch_soon gets back only how many entries were applied, not the events; a
    batch that ends the task still wakes the webhook dispatchers, as append_batch does."""
    await _started(backbone, "tsk_soon_end")  # its first append loaded the script
    woken: list[bool] = []
    backbone._events._wake_dispatchers = lambda: woken.append(True)
    ending = [(EventType.REQUEST_OUTPUT, {"i": 0}), (EventType.REQUEST_COMPLETED, {})]
    applied = backbone.append_batch_soon("tsk_soon_end", 0, ending)
    assert applied is not None
    assert await applied == 2
    assert woken == [True]
    stored = await backbone.get_task("tsk_soon_end")
    assert stored is not None and stored.task.status == "completed"
    assert stored.task.requests[0].output == [{"i": 0}]


class RefusingSoonBackbone(FailingBackbone):
    """Cannot even build the append it is handed (as an encoding error would)."""

    def append_batch_soon(
        self, task_id: str, index: int, entries: list[tuple[EventType, Any]]
    ) -> asyncio.Future[int] | None:
        raise ValueError("cannot encode")


async def test_an_append_that_cannot_be_started_surfaces_like_a_failed_flush() -> None:
    """An error raised while handing a batch to the backbone reaches the skill at its next
    emit and the worker at its flush, as one raised by a flush task does."""
    ctx = await _started(RefusingSoonBackbone(), "tsk_unbuildable")
    await ctx.output({"i": 0})
    with pytest.raises(ValueError, match="cannot encode"):
        await ctx.output({"i": 1})
    with pytest.raises(ValueError, match="cannot encode"):
        await ctx.flush()


async def test_appends_behind_a_lone_flush_merge_into_the_next_batch_only(
    backbone: RedisBackbone,
) -> None:
    """On Redis the first append of a run leaves at once (the batcher's next round trip);
    the appends queued while it travels merge into one delta of the next batch, never into
    the one already sent, and the text arrives whole and in order."""
    deltas = await _hello_with_a_call_between(backbone, "tsk_soon_merge")
    assert deltas == [
        {"output": 0, "field": "text", "append": "He"},
        {"output": 0, "field": "text", "append": "llo"},
        {"output": 1, "field": "arguments", "append": "{}"},
        {"output": 0, "field": "text", "append": "!"},
    ]
    stored = await backbone.get_task("tsk_soon_merge")
    assert stored is not None
    assert stored.task.requests[0].output == [
        {"type": "text", "text": "Hello!"},
        {"type": "tool_call", "arguments": "{}"},
    ]
