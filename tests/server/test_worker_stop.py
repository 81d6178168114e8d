"""Stopping a worker pool stops every claim, even one whose skill swallows its cancellation."""

from __future__ import annotations

import asyncio
from typing import Any

from skillwire.protocol import format_time, lifecycle
from skillwire.server import App
from skillwire.server.backbone import MemoryBackbone, WorkItem
from skillwire.server.engine import Registry, WorkerPool

stubborn_app = App("stubborn")
started = asyncio.Event()


@stubborn_app.skill()
async def stubborn(i: int) -> dict[str, Any]:
    if i == 0:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            return {"i": i, "swallowed": True}  # a skill that ignores being stopped
    return {"i": i}


async def test_a_swallowed_stop_still_ends_the_chain() -> None:
    """A skill that swallows its cancellation still ends its chain: the next request fails
    with SHUTDOWN instead of starting."""
    started.clear()
    backbone = MemoryBackbone()
    await backbone.start()
    registry = Registry([stubborn_app], max_requests=5)
    pool = WorkerPool(backbone, registry, concurrency=1, default_timeout=30, requeue_on_stop=False)
    await pool.start()
    try:
        task, first = lifecycle.new_task(
            "tsk_stubborn", "stubborn", "stubborn", 2, {}, format_time(0)
        )
        # One chain of two requests: the second may only start once the first has finished.
        item = WorkItem("tsk_stubborn", "stubborn", "stubborn", "u", [0, 1], [{"i": 0}, {"i": 1}])
        await backbone.create_task(task, first, owner="u", webhook_url=None, work=[item])
        await asyncio.wait_for(started.wait(), 5)
        await asyncio.wait_for(pool.stop(grace=0), 5)
        stored = await backbone.get_task("tsk_stubborn")
        assert stored is not None
        second = stored.task.requests[1]
        assert second.status == "failed", stored.task  # never started: the claim stopped
        assert second.error is not None and second.error.code == "SHUTDOWN"
    finally:
        await backbone.close()
