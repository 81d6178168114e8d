"""The Redis backbone after Redis restarts empty or is flushed: pooled connections are
replaced, the work group is recreated on every path, and the queue figures stay true."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from skillwire.protocol import BackboneUnavailable, format_time, lifecycle
from skillwire.server.backbone import WorkItem
from skillwire.server.backbone.redis import RedisBackbone
from skillwire.server.backbone.redis import _keys as keys
from tests.conftest import RedisServer, own_redis_server, scaled, start_server


@pytest.fixture(scope="module")
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of this module's own (without persistence), which the tests restart."""
    with own_redis_server("skillwire-redis-loss-") as server:
        yield server


@pytest.fixture
async def backbone(own_redis: RedisServer) -> AsyncIterator[RedisBackbone]:
    own_redis.flush()
    backbone = RedisBackbone(own_redis.url, lease=0.2)
    await backbone.start()
    yield backbone
    await backbone.close()


async def _create(backbone: RedisBackbone, task_id: str) -> None:
    task, first = lifecycle.new_task(task_id, "demo", "echo", 1, {}, format_time(0))
    item = WorkItem(task_id, "demo", "echo", "u", [0], [{"text": "x"}])
    await backbone.create_task(task, first, owner="u", webhook_url=None, work=[item])


async def _groups(url: str) -> list[bytes]:
    client = aioredis.Redis.from_url(url)
    try:
        return [g["name"] for g in await client.xinfo_groups(keys.WORK)]
    finally:
        await client.aclose()


def _restart(server: RedisServer) -> None:
    server.stop()
    server.start()


async def test_pooled_connections_are_replaced_after_a_redis_restart(
    own_redis: RedisServer, backbone: RedisBackbone
) -> None:
    """Every pooled connection died with Redis: the first burst after it is back succeeds."""
    await _create(backbone, "tsk_before")
    # Thirty at once hold thirty pooled connections, each of which the restart kills.
    await asyncio.gather(*(backbone.list_tasks(**_ALL) for _ in range(30)))
    await asyncio.to_thread(_restart, own_redis)  # this loop goes on meanwhile, as a server's
    results = await asyncio.gather(
        *(backbone.list_tasks(**_ALL) for _ in range(30)),
        *(backbone.get_task("tsk_before") for _ in range(30)),
        return_exceptions=True,
    )
    assert [r for r in results if isinstance(r, BaseException)] == []


async def test_reads_on_a_connection_whose_death_was_not_seen_yet_are_sent_again(
    own_redis: RedisServer, backbone: RedisBackbone
) -> None:
    """Redis restarts while this loop is busy (no close seen yet): batched reads, which are
    safe to repeat, go once more on a fresh connection instead of failing."""
    await _create(backbone, "tsk_before")
    await asyncio.gather(*(backbone.get_task("tsk_before") for _ in range(30)))
    _restart(own_redis)  # blocks this loop: the pooled connections still look alive
    results = await asyncio.gather(
        *(backbone.get_task("tsk_gone") for _ in range(30)),
        *(backbone.read_events("tsk_gone", 0, 10) for _ in range(30)),
        return_exceptions=True,
    )
    assert results == [None] * 60


_ALL = {"owner": None, "status": None, "app": None, "skill": None, "limit": 5, "offset": 0}


async def test_claim_recreates_the_work_group_when_the_reclaim_finds_it_gone(
    own_redis: RedisServer, backbone: RedisBackbone, caplog: pytest.LogCaptureFixture
) -> None:
    """FLUSHALL, then a claim that begins with the lease reclaim (a worker whose backoff grew
    past half the lease always does): it recreates the group, and the new work is claimed."""
    own_redis.flush()
    await _create(backbone, "tsk_after_flush")  # its XADD makes the stream, not the group
    claimed = []
    with caplog.at_level(logging.WARNING, logger="skillwire.redis"):
        for _ in range(5):
            await asyncio.sleep(0.15)  # past half the lease: this claim reclaims first
            claimed += await backbone.claim("c1", 10, 0.05)
            if claimed:
                break
    assert [c.item.task_id for c in claimed] == ["tsk_after_flush"]
    assert any("lost its data" in r.getMessage() for r in caplog.records)


async def test_renewing_a_lease_recreates_the_work_group(
    own_redis: RedisServer, backbone: RedisBackbone
) -> None:
    """A worker renewing leases after FLUSHALL recreates the group instead of failing."""
    await _create(backbone, "tsk_running")
    claims = await backbone.claim("c1", 10, 0.05)
    own_redis.flush()
    await backbone.touch("c1", claims)
    assert await _groups(own_redis.url) == [keys.WORK_GROUP.encode()]


async def test_queue_stats_count_work_waiting_while_the_group_is_gone(
    own_redis: RedisServer, backbone: RedisBackbone
) -> None:
    """Without the group every item in the stream waits; without the stream nothing does."""
    own_redis.flush()
    assert await backbone.queue_stats() == (0, 0.0)
    await _create(backbone, "tsk_a")
    await _create(backbone, "tsk_b")
    depth, oldest = await backbone.queue_stats()
    assert depth == 2
    assert oldest >= 0.0


async def test_the_readiness_check_recreates_a_lost_work_group(
    own_redis: RedisServer, backbone: RedisBackbone, caplog: pytest.LogCaptureFixture
) -> None:
    """/readyz's check finds the group gone, says Redis lost its data, and recreates it."""
    own_redis.flush()
    with caplog.at_level(logging.WARNING, logger="skillwire.redis"):
        await backbone.check()
    assert await _groups(own_redis.url) == [keys.WORK_GROUP.encode()]
    assert any("lost its data" in r.getMessage() for r in caplog.records)


async def test_a_burst_of_task_reads_after_a_redis_restart_gets_no_503(
    own_redis: RedisServer,
) -> None:
    """Over HTTP: once /readyz is 200 after Redis restarted, 30 concurrent task reads and a
    metrics scrape answer without a single 503 (the task is gone with Redis's data: 404)."""
    own_redis.flush()
    server = start_server({"backbone": "redis", "redis_url": own_redis.url})
    try:
        async with server.async_client() as client:
            created = await client.post(
                "/api/v1/apps/demo/echo", json={"requests": [{"text": "x"}]}
            )
            path = f"/api/v1/tasks/{created.json()['task_id']}"
            warm = await asyncio.gather(*(client.get(path) for _ in range(30)))
            assert {r.status_code for r in warm} == {200}
            await asyncio.to_thread(_restart, own_redis)
            async with asyncio.timeout(scaled(10)):
                while (await client.get("/readyz")).status_code != 200:
                    await asyncio.sleep(0.05)
            burst = await asyncio.gather(
                *(client.get(path) for _ in range(30)), client.get("/metrics")
            )
        assert [r.status_code for r in burst] == [404] * 30 + [200]
    finally:
        await asyncio.to_thread(server.stop)


async def test_the_readiness_check_passes_only_once_live_events_flow_again(
    own_redis: RedisServer, backbone: RedisBackbone, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis down long enough for the pub/sub backoff to grow, then back: once the check
    passes, a listen succeeds (it used to pass while the pub/sub was still waiting)."""
    with caplog.at_level(logging.WARNING, logger="skillwire.redis"):
        await asyncio.to_thread(own_redis.stop)
        async with asyncio.timeout(scaled(20)):
            # Backoff 0.1, 0.2, 0.4, 0.8, 1.6, then 2 s: up to 3 s with jitter.
            while sum("pub/sub connection lost" in r.getMessage() for r in caplog.records) < 6:
                await asyncio.sleep(0.05)
    await asyncio.to_thread(own_redis.start)
    async with asyncio.timeout(scaled(10)):
        while True:
            try:
                await backbone.check()
                break
            except BackboneUnavailable:
                await asyncio.sleep(0.02)
    undo = await backbone.listen("tsk_followed", lambda event: None)
    undo()


async def test_a_write_on_a_transport_redis_just_closed_is_a_503_not_a_500(
    backbone: RedisBackbone, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvloop's RuntimeError for a write on a closed transport (seen under CLIENT KILL, as a
    500) leaves the backbone as BackboneUnavailable; other RuntimeErrors stay bugs."""

    async def closed(*args: object, **kwargs: object) -> None:
        raise RuntimeError(
            "unable to perform operation on <TCPTransport closed=True reading=False "
            "0x5604>; the handler is closed"
        )

    monkeypatch.setattr(backbone._client, "xinfo_groups", closed)
    with pytest.raises(BackboneUnavailable):
        await backbone.queue_stats()

    async def bug(*args: object, **kwargs: object) -> None:
        raise RuntimeError("something else")

    monkeypatch.setattr(backbone._client, "xinfo_groups", bug)
    with pytest.raises(RuntimeError, match="something else"):
        await backbone.queue_stats()


async def test_the_id_secret_is_put_back_when_the_loss_is_noticed(
    own_redis: RedisServer, backbone: RedisBackbone
) -> None:
    """After a FLUSHALL, the process that notices puts its id secret back: a process that
    starts later signs and verifies task ids with the same one."""
    secret = await backbone.id_secret()
    own_redis.flush()
    await backbone.check()
    later = RedisBackbone(own_redis.url)
    try:
        assert await later.id_secret() == secret
    finally:
        await later.close()
