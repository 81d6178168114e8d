"""On the memory backbone new work goes straight to a free worker slot, never past the limit."""

from __future__ import annotations

import asyncio
from typing import Any

from skillwire.protocol import format_time, lifecycle
from skillwire.server import App
from skillwire.server.backbone import MemoryBackbone, WorkItem
from skillwire.server.engine import Registry, WorkerPool

held = App("held")
release = asyncio.Event()


@held.skill()
async def hold(i: int) -> dict[str, Any]:
    await release.wait()
    return {"i": i}


async def _create(backbone: MemoryBackbone, task_id: str) -> None:
    task, first = lifecycle.new_task(task_id, "held", "hold", 1, {}, format_time(0))
    item = WorkItem(task_id, "held", "hold", "u", [0], [{"i": 0}])
    await backbone.create_task(task, first, owner="u", webhook_url=None, work=[item])


async def _status(backbone: MemoryBackbone, task_id: str) -> str:
    stored = await backbone.get_task(task_id)
    assert stored is not None
    return stored.task.status.value


async def test_work_goes_straight_to_a_free_slot_and_queues_when_none_is_free() -> None:
    release.clear()
    backbone = MemoryBackbone()
    await backbone.start()
    pool = WorkerPool(backbone, Registry([held], max_requests=5), concurrency=1, default_timeout=5)
    await pool.start()
    try:
        await _create(backbone, "tsk_first")
        assert pool.in_flight == 0 and len(pool._claims) == 1  # taken at once, not queued
        assert backbone._queue.empty()
        await asyncio.sleep(0.05)
        assert await _status(backbone, "tsk_first") == "running"

        await _create(backbone, "tsk_second")  # the only slot is busy: it waits in the queue
        await asyncio.sleep(0.05)
        assert await _status(backbone, "tsk_second") == "queued"
        assert pool.in_flight == 1

        release.set()
        for _ in range(100):
            if await _status(backbone, "tsk_second") == "completed":
                break
            await asyncio.sleep(0.02)
        assert await _status(backbone, "tsk_first") == "completed"
        assert await _status(backbone, "tsk_second") == "completed"
    finally:
        release.set()
        await pool.stop()
        await backbone.close()


async def test_a_stopped_pool_takes_nothing() -> None:
    backbone = MemoryBackbone()
    pool = WorkerPool(backbone, Registry([held], max_requests=5), concurrency=4, default_timeout=5)
    await pool.start()
    await pool.stop()
    await _create(backbone, "tsk_later")
    assert backbone._queue.qsize() == 1  # left for whoever runs next
