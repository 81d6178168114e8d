"""The Redis backbone shares round trips between concurrent writers, and loses nothing."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from skillwire.protocol import (
    BackboneUnavailable,
    EventType,
    decode_event,
    format_time,
    lifecycle,
)
from skillwire.server.backbone import WorkItem
from skillwire.server.backbone.redis import RedisBackbone
from skillwire.server.backbone.redis._batching import CommandBatcher
from tests.conftest import RedisServer


async def _create(backbone: RedisBackbone, task_id: str) -> None:
    task, first = lifecycle.new_task(task_id, "demo", "echo", 1, {}, format_time(0))
    item = WorkItem(task_id, "demo", "echo", "u", [0], [{"text": "x"}])
    await backbone.create_task(task, first, owner="u", webhook_url=None, work=[item])


async def _commands(url: str, name: str) -> int:
    client = aioredis.Redis.from_url(url)
    try:
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    return int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))


async def test_many_tasks_appending_at_once_keep_every_event_in_order(
    redis_server: RedisServer,
) -> None:
    """500 writers, 20 events each, all at once: every task's log is complete and in order,
    and the process needed far fewer connections than writers (the pool holds only 8)."""
    redis_server.flush()
    backbone = RedisBackbone(redis_server.url, max_connections=8, pool_timeout=2.0)
    await backbone.start()
    try:
        ids = [f"tsk_batch{i}" for i in range(500)]
        await asyncio.gather(*(_create(backbone, task_id) for task_id in ids))

        async def write(task_id: str) -> None:
            assert await backbone.append(task_id, EventType.REQUEST_STARTED, 0, {})
            for n in range(20):
                assert await backbone.append(task_id, EventType.REQUEST_OUTPUT, 0, {"n": n})

        await asyncio.gather(*(write(task_id) for task_id in ids))
        for task_id in ids[::50]:
            log = await backbone.read_events(task_id, 0, 100)
            assert log is not None
            decoded = [decode_event(e.json) for e in log.events]
            outputs = [e.data["n"] for e in decoded if e.type == "request.output"]
            assert outputs == list(range(20))
            # queued, task.started + request.started, 20 outputs
            assert [e.seq for e in log.events] == list(range(1, 24))
    finally:
        await backbone.close()


async def test_concurrent_appends_share_round_trips(redis_server: RedisServer) -> None:
    """Appends issued in the same turn of the loop go out as one pipeline, not one each."""
    redis_server.flush()
    client = aioredis.Redis.from_url(redis_server.url)
    batcher = CommandBatcher(client, max_in_flight=1)
    try:
        before = await _commands(redis_server.url, "ping")
        replies = await asyncio.gather(*(batcher.command("PING") for _ in range(300)))
        assert replies == [b"PONG"] * 300
        assert await _commands(redis_server.url, "ping") - before == 300
        # One client connection did all of it: the pool created exactly one.
        assert len(client.connection_pool._available_connections) == 1
    finally:
        await batcher.close()
        await client.aclose()


async def test_a_script_redis_forgot_is_loaded_again(redis_server: RedisServer) -> None:
    """After SCRIPT FLUSH (a restarted Redis), appends still work: no NOSCRIPT reaches callers."""
    redis_server.flush()
    backbone = RedisBackbone(redis_server.url)
    await backbone.start()
    try:
        await _create(backbone, "tsk_flushed")
        assert await backbone.append("tsk_flushed", EventType.REQUEST_STARTED, 0, {})
        client = aioredis.Redis.from_url(redis_server.url)
        await client.script_flush()
        await client.aclose()
        events = await backbone.append("tsk_flushed", EventType.REQUEST_OUTPUT, 0, {"n": 1})
        assert [e.seq for e in events] == [4]
    finally:
        await backbone.close()


async def test_a_dead_redis_fails_every_waiting_caller_with_503() -> None:
    """Nothing listens on the port: each queued append raises BackboneUnavailable, none hangs."""
    backbone = RedisBackbone("redis://127.0.0.1:1/0", pool_timeout=0.5)
    try:
        results = await asyncio.wait_for(
            asyncio.gather(
                *(
                    backbone.append(f"tsk_x{i}", EventType.REQUEST_STARTED, 0, {})
                    for i in range(20)
                ),
                return_exceptions=True,
            ),
            timeout=10,
        )
        assert all(isinstance(r, BackboneUnavailable) for r in results), results
    finally:
        await backbone.close()


@pytest.mark.parametrize("failing", ["ILLEGAL", "other"])
async def test_one_failing_script_does_not_fail_its_batch(
    redis_server: RedisServer, failing: str
) -> None:
    """An error reply reaches its own caller only; the rest of the pipeline succeeds."""
    redis_server.flush()
    client = aioredis.Redis.from_url(redis_server.url)
    batcher = CommandBatcher(client)
    source = "if ARGV[1] == 'bad' then return redis.error_reply(ARGV[2]) end return ARGV[1]"
    try:
        results = await asyncio.gather(
            batcher.script(source, [], ["a", ""]),
            batcher.script(source, [], ["bad", f"{failing} nope"]),
            batcher.script(source, [], ["c", ""]),
            return_exceptions=True,
        )
        assert results[0] == b"a" and results[2] == b"c"
        assert isinstance(results[1], Exception) and failing in str(results[1])
    finally:
        await batcher.close()
        await client.aclose()


async def test_a_call_right_after_the_last_flusher_finished_is_still_sent(
    redis_server: RedisServer,
) -> None:
    """The caller woken by a reply queues its next command before the finished flusher's done
    callbacks run: the flusher must already have left the running set, or nothing sends it."""
    client = aioredis.Redis.from_url(redis_server.url)
    batcher = CommandBatcher(client, max_in_flight=1)
    try:
        async with asyncio.timeout(5):  # not wait_for: its own task would hide the race
            for _ in range(50):
                assert await batcher.command("PING") == b"PONG"
    finally:
        await batcher.close()
        await client.aclose()
