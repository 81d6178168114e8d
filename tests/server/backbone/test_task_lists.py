"""Task lists on both backbones: the same pages and exact totals, filtered or not, past 10,000.

The Redis backbone keeps the ids of every task and of each principal's tasks in indexes per
status, app and skill (moved between the status ones by the scripts that change a status);
the memory backbone scans its tasks. Both must answer every list alike.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from skillwire.protocol import EventType, TaskStatus, format_time, lifecycle
from skillwire.server.backbone import Backbone, MemoryBackbone
from skillwire.server.backbone.redis import RedisBackbone
from skillwire.server.backbone.redis import _keys as keys
from tests.conftest import RedisServer, scaled

DB = 4  # a database of its own (the contract test uses 3, module-wide servers 1 and 2)
MANY = 10_050  # past the 10,000 tasks the Redis backbone used to scan for a filtered list
OLD = 30  # the oldest tasks, of another skill and app: past the old scan


async def _flushed(url: str) -> None:
    client = aioredis.Redis.from_url(url)
    await client.flushdb()
    await client.aclose()


@pytest.fixture
async def backbones(redis_server: RedisServer) -> AsyncIterator[tuple[Backbone, Backbone]]:
    """A memory and a Redis backbone, the Redis one on an empty database."""
    url = f"redis://127.0.0.1:{redis_server.port}/{DB}"
    await _flushed(url)
    memory, redis = MemoryBackbone(), RedisBackbone(url)
    for backbone in (memory, redis):
        await backbone.start()
    yield memory, redis
    for backbone in (memory, redis):
        await backbone.close()
    await _flushed(url)


async def _create(backbone: Backbone, task_id: str, owner: str, app: str, skill: str) -> None:
    task, event = lifecycle.new_task(task_id, app, skill, 1, {}, format_time(time.time()))
    await backbone.create_task(task, event, owner=owner, webhook_url=None, work=[])


def _spec(i: int) -> tuple[str, str, str, str]:
    """Task ``i``: its id (in creation order, for Redis's ties within a millisecond), owner,
    app and skill."""
    owner = "alice" if i % 3 else "bob"
    app, skill = ("legacy", "first") if i < OLD else ("demo", "echo" if i % 2 else "count")
    return f"tsk_list{i:06d}", owner, app, skill


async def _page(backbone: Backbone, **query: Any) -> tuple[list[tuple[str, str]], int]:
    args: dict[str, Any] = {"owner": None, "status": None, "app": None, "skill": None}
    args.update({"limit": 20, "offset": 0, **query})
    tasks, total = await backbone.list_tasks(**args)
    return [(t.task_id, t.status.value) for t in tasks], total


async def test_filtered_lists_past_ten_thousand_tasks_are_exact_on_both(
    backbones: tuple[Backbone, Backbone],
) -> None:
    """With 10,050 tasks, every filter (status, app, skill, owner, combined) gives the same page
    and the same exact total on both backbones, including tasks older than the newest 10,000,
    and statuses changed by appends and cancels move the tasks between the status lists."""
    specs = [_spec(i) for i in range(MANY)]
    for backbone in backbones:
        # 100 at a time: 500 opened up to 256 new Redis connections at once, and on a busy
        # machine some timed out connecting (this test is about the lists, not the pool).
        for start in range(0, MANY, 100):
            await asyncio.gather(*(_create(backbone, *s) for s in specs[start : start + 100]))
        # Among the oldest tasks: some run, some complete, some fail, some are cancelled.
        for i in range(0, OLD, 2):
            await backbone.append(specs[i][0], EventType.REQUEST_STARTED, 0, {})
        for i in range(0, OLD, 6):
            await backbone.append(specs[i][0], EventType.REQUEST_COMPLETED, 0, {})
        for i in range(2, OLD, 6):
            await backbone.append(
                specs[i][0],
                EventType.REQUEST_FAILED,
                0,
                {"error": {"code": "SKILL_ERROR", "message": "m"}},
            )
        for i in range(1, OLD, 4):
            await backbone.cancel(specs[i][0])
    queries: list[dict[str, Any]] = [
        {},
        {"owner": "bob"},
        {"offset": MANY - 10},
        {"skill": "first"},
        {"app": "legacy", "owner": "alice"},
        {"app": "demo", "offset": 9_990},
        {"skill": "echo", "owner": "bob", "offset": 3_000, "limit": 5},
        {"app": "demo", "skill": "count"},
        {"app": "legacy", "skill": "echo"},
        {"app": "nope"},
        {"status": TaskStatus.QUEUED, "offset": 10_000},
        *({"status": s} for s in TaskStatus),
        *({"status": s, "owner": "alice"} for s in TaskStatus),
        {"status": TaskStatus.QUEUED, "app": "legacy", "skill": "first", "owner": "bob"},
        {"status": TaskStatus.QUEUED, "app": "demo", "skill": "echo", "limit": 3},
    ]
    memory, redis = backbones
    for query in queries:
        assert await _page(redis, **query) == await _page(memory, **query), query
    # And the totals are the true ones, not those of a scan of the newest 10,000.
    assert (await _page(redis, skill="first"))[1] == OLD
    assert (await _page(redis, app="demo"))[1] == MANY - OLD
    assert (await _page(redis, status=TaskStatus.QUEUED))[1] == MANY - OLD + 7
    assert (await _page(redis, status=TaskStatus.CANCELLED))[1] == 8


async def test_an_expired_task_leaves_the_filtered_lists(redis_server: RedisServer) -> None:
    """Once a task expires with the retention window, a filtered list no longer counts it and
    its id is pruned from the index it was listed from."""
    url = f"redis://127.0.0.1:{redis_server.port}/{DB}"
    await _flushed(url)
    backbone = RedisBackbone(url, retention=1)
    await backbone.start()
    try:
        await _create(backbone, "tsk_expiring", "alice", "demo", "echo")
        await backbone.cancel("tsk_expiring")
        assert (await _page(backbone, status=TaskStatus.CANCELLED))[1] == 1
        deadline = time.monotonic() + scaled(10)
        while (await _page(backbone, status=TaskStatus.CANCELLED, owner="alice"))[1]:
            assert time.monotonic() < deadline, "the expired task is still counted"
            await asyncio.sleep(0.05)
        client = aioredis.Redis.from_url(url)
        try:
            assert await client.zcard(keys.status_tasks("alice", "cancelled")) == 0
        finally:
            await client.aclose()
    finally:
        await backbone.close()
        await _flushed(url)


async def test_the_sweep_prunes_indexes_nobody_lists(redis_server: RedisServer) -> None:
    """Without any listing, the periodic sweep drops an expired task's id from every index it
    was in, and then the empty indexes' names."""
    url = f"redis://127.0.0.1:{redis_server.port}/{DB}"
    await _flushed(url)
    backbone = RedisBackbone(url, retention=1, sweep_interval=0.1)
    client = aioredis.Redis.from_url(url)
    await backbone.start()
    try:
        await _create(backbone, "tsk_swept", "alice", "demo", "echo")
        await backbone.cancel("tsk_swept")
        names = {n.decode() for n in await client.smembers(keys.INDEXES)}
        assert names == {
            keys.TASKS,
            keys.owner_tasks("alice"),
            *(keys.status_tasks(o, s) for o in (None, "alice") for s in ("queued", "cancelled")),
            *(keys.app_tasks(o, "demo") for o in (None, "alice")),
            *(keys.skill_tasks(o, "echo") for o in (None, "alice")),
        }
        deadline = time.monotonic() + scaled(10)
        while await client.scard(keys.INDEXES):
            assert time.monotonic() < deadline, "the sweep left expired ids behind"
            await asyncio.sleep(0.05)
        assert not await client.exists(*names)
    finally:
        await client.aclose()
        await backbone.close()
        await _flushed(url)


def test_index_keys_of_different_filters_never_collide() -> None:
    """Owners, apps and skills holding ``:`` or ``%`` get index keys of their own."""
    made = {
        keys.app_tasks("a:app:b", "c"),
        keys.app_tasks("a", "b:app:c"),
        keys.app_tasks("a%3Ab", "c"),
        keys.skill_tasks("a", "b:skill:c"),
        keys.status_tasks("a:status:queued", "queued"),
        keys.status_tasks(None, "queued"),
        keys.status_tasks("*", "queued"),
        keys.index_prefix(None),
    }
    assert len(made) == 8


async def test_the_memory_backbone_forgets_swept_tasks_in_each_principals_list() -> None:
    """A task the memory backbone sweeps after retention leaves its owner's list and the
    admin's, while the owner's other tasks stay listed."""
    backbone = MemoryBackbone(retention=10)
    await _create(backbone, "tsk_old", "alice", "demo", "echo")
    await backbone.cancel("tsk_old")
    await _create(backbone, "tsk_new", "alice", "demo", "echo")
    await _create(backbone, "tsk_bobs", "bob", "demo", "echo")
    await backbone.cancel("tsk_bobs")
    backbone.sweep(time.time() + 60)
    assert await _page(backbone, owner="alice") == ([("tsk_new", "queued")], 1)
    assert await _page(backbone, owner="bob") == ([], 0)
    assert await _page(backbone) == ([("tsk_new", "queued")], 1)
