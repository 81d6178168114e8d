"""At-least-once work on Redis: a lost worker's item comes back, but not forever."""

from __future__ import annotations

import asyncio

import pytest

from skillwire.protocol import format_time, lifecycle
from skillwire.server.backbone import WorkItem
from skillwire.server.backbone.redis import RedisBackbone
from skillwire.server.engine import Registry, WorkerPool, demo
from tests.conftest import RedisServer


async def _task(backbone: RedisBackbone, task_id: str) -> WorkItem:
    task, first = lifecycle.new_task(task_id, "demo", "echo", 1, {}, format_time(0))
    item = WorkItem(task_id, "demo", "echo", "u", [0], [{"text": "x"}])
    await backbone.create_task(task, first, owner="u", webhook_url=None, work=[item])
    return item


async def test_an_unacked_item_is_redelivered_after_the_lease_with_its_count(
    redis_server: RedisServer,
) -> None:
    """A claimed item not acked comes back to another consumer after the lease, counted."""
    redis_server.flush()
    backbone = RedisBackbone(redis_server.url, lease=0.2)
    await backbone.start()
    try:
        await _task(backbone, "tsk_redeliver")
        first = await backbone.claim("dead-worker", 1, 1.0)
        assert [c.deliveries for c in first] == [1]
        await asyncio.sleep(0.5)
        again = await backbone.claim("live-worker", 1, 1.0)
        assert [c.item.task_id for c in again] == ["tsk_redeliver"]
        assert again[0].deliveries == 2
    finally:
        await backbone.close()


async def test_an_item_delivered_too_often_fails_with_worker_lost(
    redis_server: RedisServer,
) -> None:
    """Past work_max_deliveries the requests fail with WORKER_LOST, so the task ends."""
    redis_server.flush()
    backbone = RedisBackbone(redis_server.url, lease=0.1)
    await backbone.start()
    pool = WorkerPool(
        backbone,
        Registry([demo], max_requests=5),
        concurrency=1,
        default_timeout=5,
        lease=0.1,
        max_deliveries=2,
    )
    try:
        await _task(backbone, "tsk_poison")
        for consumer in ("lost-1", "lost-2"):
            assert await backbone.claim(consumer, 1, 1.0)
            await asyncio.sleep(0.25)
        await pool.start()
        for _ in range(100):
            stored = await backbone.get_task("tsk_poison")
            if stored is not None and stored.task.status == "failed":
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the task never ended")
        error = stored.task.requests[0].error
        assert error is not None and error.code == "WORKER_LOST"
    finally:
        await pool.stop()
        await backbone.close()
