"""Remote workers on several gateways sharing one Redis: the work goes where a worker is free."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import Any

import redis

from tests.conftest import RedisServer, RunningServer, scaled, start_server

from .helpers import (
    WORKER_KEYS,
    Inbox,
    call,
    declaration,
    events_of,
    finished,
    gap_free,
    hello,
    task_when,
    worker_ws,
)


async def test_workers_on_two_gateways_share_the_work(
    gateways: tuple[RunningServer, RunningServer],
) -> None:
    """One worker of concurrency 1 on each gateway: a two-request call keeps both busy."""
    first, second = gateways
    async with worker_ws(first) as conn_a, worker_ws(second) as conn_b:
        inbox_a, inbox_b = Inbox(conn_a), Inbox(conn_b)
        await hello(inbox_a, declaration())
        await hello(inbox_b, declaration())
        response = await call(first, "upper", [{"text": "a"}, {"text": "b"}])
        work_a, work_b = await inbox_a.until("work"), await inbox_b.until("work")
        assert {work_a["index"], work_b["index"]} == {0, 1}
        await inbox_a.send({"op": "completed", "work_id": work_a["work_id"]})
        await inbox_b.send({"op": "completed", "work_id": work_b["work_id"]})
        task = await task_when(second, response.json()["task_id"], finished)
    assert task["status"] == "completed"


async def test_a_call_on_a_gateway_without_workers_runs_on_another(
    gateways: tuple[RunningServer, RunningServer],
) -> None:
    """Calls on a gateway with no worker run on the worker connected to the other one."""
    first, second = gateways
    async with worker_ws(second) as conn:
        inbox = Inbox(conn)
        await hello(inbox, declaration())
        response = await call(first, "upper", [{"text": str(i)} for i in range(3)])
        seen = set()
        for _ in range(3):
            work = await inbox.until("work")
            seen.add(work["index"])
            await inbox.send({"op": "output", "work_id": work["work_id"], "output": work["index"]})
            await inbox.send({"op": "completed", "work_id": work["work_id"]})
        task = await task_when(first, response.json()["task_id"], finished)
    assert seen == {0, 1, 2}
    assert task["status"] == "completed"
    assert task["previews"] == [0, 1, 2]


async def test_a_worker_killed_mid_request_loses_its_work_to_the_other_gateway(
    gateways: tuple[RunningServer, RunningServer],
) -> None:
    """The worker on gateway A dies mid-request: the work runs again on gateway B; no gap."""
    first, second = gateways
    async with worker_ws(second) as conn_b:
        inbox_b = Inbox(conn_b)
        conn_a = await worker_ws(first)
        inbox_a = Inbox(conn_a)
        await hello(inbox_a, declaration())
        response = await call(first, "upper", [{"text": "a"}])
        task_id = response.json()["task_id"]
        work = await inbox_a.until("work")
        await inbox_a.send({"op": "output", "work_id": work["work_id"], "output": "lost"})
        await task_when(first, task_id, lambda t: t["requests"][0]["output"] == ["lost"])
        await hello(inbox_b, declaration())  # B is busy with nothing; A's worker now dies
        conn_a.transport.abort()
        again = await inbox_b.until("work")
        assert again["input"] == {"text": "a"} and again["task_id"] == task_id
        await inbox_b.send({"op": "output", "work_id": again["work_id"], "output": "kept"})
        await inbox_b.send({"op": "completed", "work_id": again["work_id"]})
        task = await task_when(second, task_id, finished)
    assert task["status"] == "completed"
    assert task["requests"][0]["output"] == ["kept"]
    events = await events_of(first, task_id)
    assert gap_free(events)
    assert [e["type"] for e in events][-2:] == ["request.completed", "task.completed"]


async def test_no_worker_anywhere_queues_until_one_connects_elsewhere(
    gateways: tuple[RunningServer, RunningServer],
) -> None:
    """A call with no worker on any gateway shows no_worker, then runs when one connects."""
    first, second = gateways
    async with worker_ws(second) as conn:
        await hello(Inbox(conn), declaration())
    response = await call(first, "upper", [{"text": "a"}])
    task_id = response.json()["task_id"]
    await task_when(
        first, task_id, lambda t: t["requests"][0]["status"] == "queued" and t["last_seq"] >= 2
    )
    async with worker_ws(second) as conn:
        inbox = Inbox(conn)
        await hello(inbox, declaration())
        work = await asyncio.wait_for(inbox.until("work"), 10)
        await inbox.send({"op": "completed", "work_id": work["work_id"]})
        task = await task_when(first, task_id, finished)
    assert task["status"] == "completed"


async def test_every_gateway_lists_the_workers_of_all(
    gateways: tuple[RunningServer, RunningServer],
) -> None:
    """GET /api/v1/workers on one gateway lists the worker connected to the other."""
    first, second = gateways
    async with worker_ws(second) as conn:
        welcome = await hello(Inbox(conn), declaration())
        async with first.async_client() as client:
            listed = (await client.get("/api/v1/workers")).json()["items"]
    assert [w["worker_id"] for w in listed] == [welcome["worker_id"]]


async def test_a_request_passed_to_another_gateway_starts_once(
    gateways: tuple[RunningServer, RunningServer], redis_server: RedisServer
) -> None:
    """A call handed from a gateway with no worker to another shows request.started once."""
    first, second = gateways
    async with worker_ws(second) as conn:
        inbox = Inbox(conn)
        await hello(inbox, declaration())
        response = await call(first, "upper", [{"text": "a"}])
        task_id = response.json()["task_id"]
        work = await inbox.until("work")
        await inbox.send({"op": "output", "work_id": work["work_id"], "output": "A"})
        await inbox.send({"op": "completed", "work_id": work["work_id"]})
        task = await task_when(first, task_id, finished)
    assert task["status"] == "completed" and task["previews"] == ["A"]
    events = await events_of(first, task_id)
    assert gap_free(events)
    assert [e["type"] for e in events].count("request.started") == 1
    store = redis.Redis.from_url(redis_server.url)
    try:  # its attempts were counted in Redis (it moved) and forgotten once it was acked
        deadline = time.monotonic() + scaled(5)
        while store.keys("sw:remote:attempts:*"):
            assert time.monotonic() < deadline, "the request's attempt count stayed in Redis"
            await asyncio.sleep(0.05)
    finally:
        store.close()


@contextlib.contextmanager
def two_gateways(
    redis_server: RedisServer, **overrides: Any
) -> Iterator[tuple[RunningServer, RunningServer]]:
    """Two gateways on the suite's Redis, as the ``gateways`` fixture, with ``overrides``."""
    redis_server.flush()
    settings = {
        "backbone": "redis",
        "redis_url": redis_server.url,
        "work_lease": 2.0,
        "keys": WORKER_KEYS,
        "heartbeat_interval": 0.5,
        **overrides,
    }
    started = [start_server(settings), start_server(settings)]
    try:
        yield started[0], started[1]
    finally:
        for server in started:
            server.stop()


async def test_attempts_are_counted_across_gateways(redis_server: RedisServer) -> None:
    """A request's worker lost on one gateway, then on the other: its second attempt is
    numbered 2 and, with work_max_deliveries = 2, the request fails WORKER_LOST."""
    with two_gateways(redis_server, work_max_deliveries=2) as (first, second):
        conn_b = await worker_ws(second)
        inbox_b = Inbox(conn_b)
        conn_a = await worker_ws(first)
        inbox_a = Inbox(conn_a)
        await hello(inbox_a, declaration())
        response = await call(first, "upper", [{"text": "a"}])
        task_id = response.json()["task_id"]
        work = await inbox_a.until("work")
        assert work["attempt"] == 1
        await hello(inbox_b, declaration())  # B serves now; A's worker dies
        conn_a.transport.abort()
        again = await inbox_b.until("work")
        assert again["task_id"] == task_id and again["attempt"] == 2
        conn_b.transport.abort()
        task = await task_when(first, task_id, finished)
    assert task["status"] == "failed"
    assert task["requests"][0]["error"]["code"] == "WORKER_LOST"


async def test_a_no_worker_timeout_outlives_the_gateway_that_queued_the_request(
    redis_server: RedisServer,
) -> None:
    """The gateway that queued a call with no worker anywhere stops: another gateway fails the
    request with TIMEOUT at the skill's timeout."""
    with two_gateways(redis_server) as (first, second):
        async with worker_ws(second) as conn:
            await hello(Inbox(conn), declaration(timeout=2.0))
        serving = redis.Redis.from_url(redis_server.url)
        try:  # wait until no gateway counts as serving the skill
            deadline = time.monotonic() + scaled(10)
            while serving.zcount("sw:remote:serving:ext/upper", int(time.time() * 1000), "+inf"):
                assert time.monotonic() < deadline, "the worker's gateway still serves the skill"
                await asyncio.sleep(0.05)
        finally:
            serving.close()
        response = await call(first, "upper", [{"text": "a"}])
        task_id = response.json()["task_id"]
        await task_when(first, task_id, lambda t: t["last_seq"] >= 2)  # request.queued no_worker
        await asyncio.to_thread(first.stop)
        task = await task_when(second, task_id, finished)
    assert task["status"] == "failed"
    assert task["requests"][0]["error"]["code"] == "TIMEOUT"
