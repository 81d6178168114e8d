"""One claim, one asyncio task: what interrupts its requests (a cancel, a timeout, a stop)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from skillwire.protocol import Task, format_time, lifecycle
from skillwire.server import App
from skillwire.server.backbone import Backbone, MemoryBackbone, WorkItem
from skillwire.server.backbone.redis import RedisBackbone
from skillwire.server.engine import Registry, WorkerPool
from tests.conftest import RedisServer, scaled

lab = App("lab")
started: dict[str, asyncio.Event] = {}


def _started(name: str) -> asyncio.Event:
    return started.setdefault(name, asyncio.Event())


@lab.skill()
async def wait(i: int) -> dict[str, Any]:
    _started(f"wait{i}").set()
    await asyncio.Event().wait()  # until interrupted
    return {"i": i}


@lab.skill(timeout=0.05)
async def shrug(i: int) -> dict[str, Any]:
    if i == 0:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return {"i": i, "swallowed": True}  # a skill that ignores its timeout
    return {"i": i}


@lab.skill(timeout=0.05)
async def slow(i: int) -> dict[str, Any]:
    if i == 0:
        await asyncio.Event().wait()
    return {"i": i}


@contextlib.asynccontextmanager
async def _pool(
    *, requeue_on_stop: bool = False, backbone: Backbone | None = None
) -> AsyncIterator[tuple[Any, WorkerPool]]:
    started.clear()
    backbone = backbone if backbone is not None else MemoryBackbone()
    await backbone.start()
    registry = Registry([lab], max_requests=5)
    pool = WorkerPool(
        backbone, registry, concurrency=4, default_timeout=30, requeue_on_stop=requeue_on_stop
    )
    await pool.start()
    try:
        yield backbone, pool
    finally:
        await pool.stop()
        await backbone.close()


async def _create(backbone: Backbone, task_id: str, skill: str, n: int) -> None:
    """A task of ``n`` requests of lab/``skill`` ({"i": 0}, {"i": 1}...) in one chain."""
    task, first = lifecycle.new_task(task_id, "lab", skill, n, {}, format_time(0))
    item = WorkItem(task_id, "lab", skill, "u", list(range(n)), [{"i": i} for i in range(n)])
    await backbone.create_task(task, first, owner="u", webhook_url=None, work=[item])


async def _finished(backbone: Backbone, task_id: str) -> Task:
    async def poll() -> Task:
        while True:
            stored = await backbone.get_task(task_id)
            assert stored is not None
            if stored.task.status in lifecycle.TERMINAL_TASK_STATUSES:
                return stored.task
            await asyncio.sleep(0.01)

    return await asyncio.wait_for(poll(), scaled(5))


async def _drained(pool: WorkerPool) -> None:
    while pool.in_flight:
        await asyncio.sleep(0.01)


async def _types(backbone: Backbone, task_id: str) -> list[str]:
    log = await backbone.read_events(task_id, 0, 100)
    assert log is not None
    return [str(event.type) for event in log.events]


async def test_an_idle_running_task_holds_one_asyncio_task() -> None:
    """A running task whose skill waits costs the process one asyncio task (its claim's),
    not one for the claim and another for the request."""
    async with _pool() as (backbone, _):
        before = len(asyncio.all_tasks())
        await _create(backbone, "tsk_idle", "wait", 1)
        await asyncio.wait_for(_started("wait0").wait(), scaled(5))
        assert len(asyncio.all_tasks()) == before + 1


async def test_an_idle_running_task_holds_one_coroutine_of_the_pool() -> None:
    """While a skill waits, its claim's coroutine awaits the skill's directly: the request
    runs inline in the claim's coroutine, not in a coroutine of its own."""
    async with _pool() as (backbone, _):
        before = asyncio.all_tasks()
        await _create(backbone, "tsk_frames", "wait", 1)
        await asyncio.wait_for(_started("wait0").wait(), scaled(5))
        (job,) = asyncio.all_tasks() - before
        chain: list[str] = []
        awaited: Any = job.get_coro()
        while hasattr(awaited, "cr_code"):
            chain.append(awaited.cr_code.co_qualname)
            awaited = awaited.cr_await
        pool_frames = [name for name in chain if name.startswith("WorkerPool.")]
        assert pool_frames == ["WorkerPool._run_claim"], chain


async def test_a_cancel_during_the_only_request_ends_the_task_cancelled_once() -> None:
    """Cancelling a task while its request runs ends it cancelled with one event, nothing
    after it; the claim ends (acked, not requeued) and the pool runs the next claim."""
    async with _pool() as (backbone, pool):
        await _create(backbone, "tsk_cancel", "wait", 1)
        await asyncio.wait_for(_started("wait0").wait(), scaled(5))
        await backbone.cancel("tsk_cancel")
        task = await _finished(backbone, "tsk_cancel")
        assert task.status == "cancelled"
        await asyncio.wait_for(_drained(pool), scaled(5))
        types = await _types(backbone, "tsk_cancel")
        assert types.count("task.cancelled") == 1 and types[-1] == "task.cancelled", types
        assert await backbone.queue_stats() == (0, 0.0)
        await _create(backbone, "tsk_after", "shrug", 1)
        await _create(backbone, "tsk_after2", "slow", 2)
        assert (await _finished(backbone, "tsk_after2")).status == "partial"


async def test_a_timed_out_request_fails_with_timeout_and_the_chain_goes_on() -> None:
    """A request past its timeout fails with TIMEOUT; the next request of its chain runs and
    the task ends (partial)."""
    async with _pool() as (backbone, _):
        await _create(backbone, "tsk_slow", "slow", 2)
        task = await _finished(backbone, "tsk_slow")
        assert task.status == "partial"
        first, second = task.requests
        assert first.status == "failed" and first.error is not None
        assert first.error.code == "TIMEOUT" and "0.05 s" in first.error.message
        assert second.status == "completed"


async def test_a_swallowed_timeout_completes_the_request_and_the_chain_goes_on() -> None:
    """A skill that swallows its timeout's cancellation completes (as under asyncio.timeout),
    and the claim is not left cancelled: the next request runs too."""
    async with _pool() as (backbone, _):
        await _create(backbone, "tsk_shrug", "shrug", 2)
        task = await _finished(backbone, "tsk_shrug")
        assert task.status == "completed", task
        assert [r.status for r in task.requests] == ["completed", "completed"]


async def test_a_stop_requeues_the_running_request_not_a_timeout() -> None:
    """Stopping the pool while a request runs requeues its claim (a shared backbone's stop):
    no ending is written for it and the task stays running."""
    async with _pool(requeue_on_stop=True) as (backbone, pool):
        await _create(backbone, "tsk_stop", "wait", 1)
        await asyncio.wait_for(_started("wait0").wait(), scaled(5))
        await asyncio.wait_for(pool.stop(grace=0), scaled(5))
        assert (await backbone.queue_stats())[0] == 1
        types = await _types(backbone, "tsk_stop")
        assert types[-1] == "request.started", types


async def test_a_swallowed_timeout_on_redis_still_ends_the_request(
    redis_server: RedisServer,
) -> None:
    """On Redis, whose commands raise a cancellation still pending on the caller's task, the
    request a skill finished after swallowing its timeout still ends (completed), and so does
    its chain: the timeout's cancel is taken back as the skill's call ends."""
    redis_server.flush()
    async with _pool(backbone=RedisBackbone(redis_server.url)) as (backbone, _):
        await _create(backbone, "tsk_shrug_redis", "shrug", 2)
        task = await _finished(backbone, "tsk_shrug_redis")
        assert [r.status for r in task.requests] == ["completed", "completed"], task
