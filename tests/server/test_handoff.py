"""On the memory backbone new work goes straight to a free worker slot, never past the limit."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from skillwire.protocol import format_time, lifecycle
from skillwire.server import App
from skillwire.server.backbone import MemoryBackbone, WorkItem
from skillwire.server.engine import Registry, WorkerPool
from tests.conftest import scaled

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


async def _becomes(backbone: MemoryBackbone, task_id: str, status: str) -> None:
    """Poll until the task has ``status`` (scaled deadline)."""
    deadline = time.monotonic() + scaled(5)
    while await _status(backbone, task_id) != status:
        assert time.monotonic() < deadline, f"{task_id} never became {status}"
        await asyncio.sleep(0.01)


async def test_work_goes_straight_to_a_free_slot_and_queues_when_none_is_free() -> None:
    """New work goes straight to a free worker slot, not through the queue; with no slot free
    it waits in the queue, and runs once the slot frees."""
    release.clear()
    backbone = MemoryBackbone()
    await backbone.start()
    pool = WorkerPool(backbone, Registry([held], max_requests=5), concurrency=1, default_timeout=5)
    await pool.start()
    try:
        await _create(backbone, "tsk_first")
        assert pool.in_flight == 0 and len(pool._claims) == 1  # taken at once, not queued
        assert backbone._queue.empty()
        await _becomes(backbone, "tsk_first", "running")

        await _create(backbone, "tsk_second")  # the only slot is busy: it waits in the queue
        await asyncio.sleep(0.05)  # a while to show it stays queued (nothing to poll for)
        assert await _status(backbone, "tsk_second") == "queued"
        assert pool.in_flight == 1

        release.set()
        await _becomes(backbone, "tsk_second", "completed")
        assert await _status(backbone, "tsk_first") == "completed"
        assert await _status(backbone, "tsk_second") == "completed"
    finally:
        release.set()
        await pool.stop()
        await backbone.close()


async def test_a_stopped_pool_takes_nothing() -> None:
    """Work created after the pool stopped stays in the queue for whoever runs next."""
    backbone = MemoryBackbone()
    pool = WorkerPool(backbone, Registry([held], max_requests=5), concurrency=4, default_timeout=5)
    await pool.start()
    await pool.stop()
    await _create(backbone, "tsk_later")
    assert backbone._queue.qsize() == 1  # left for whoever runs next
