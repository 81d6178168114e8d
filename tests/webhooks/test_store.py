"""The delivery queue of both backbones: creation with the terminal event, claims, leases."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from skillwire.protocol import (
    Conflict,
    DeliveryStatus,
    EventType,
    NotFound,
    format_time,
    lifecycle,
    new_task_id,
    to_builtins,
)
from skillwire.server.backbone import Backbone, MemoryBackbone
from skillwire.server.backbone.redis import RedisBackbone
from tests.conftest import BACKBONES, RedisServer, scaled

OWN = "https://own.example/hook"
GLOBAL = ("https://global.example/a", OWN, "https://global.example/b")


def make(request: pytest.FixtureRequest, name: str) -> Backbone:
    backbone: Backbone
    if name == "redis":
        redis_server: RedisServer = request.getfixturevalue("redis_server")
        backbone = RedisBackbone(redis_server.url, retention=60)
    else:
        backbone = MemoryBackbone(retention=60)
    backbone.webhook_urls = GLOBAL
    return backbone


@pytest.fixture(params=BACKBONES)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Backbone]:
    """A started backbone (an empty redis for the redis one) with three configured URLs."""
    if request.param == "redis":
        request.getfixturevalue("redis_server").flush()
    backbone = make(request, request.param)
    await backbone.start()
    yield backbone
    await backbone.close()


async def new_task(backbone: Backbone, webhook_url: str | None) -> str:
    now = time.time()
    task_id = new_task_id(await backbone.id_secret(), now)
    task, first = lifecycle.new_task(task_id, "demo", "echo", 1, {}, format_time(now))
    await backbone.create_task(task, first, owner="u", webhook_url=webhook_url, work=[])
    return task_id


async def finished_task(backbone: Backbone, webhook_url: str | None = OWN) -> str:
    task_id = await new_task(backbone, webhook_url)
    await backbone.append(task_id, EventType.REQUEST_STARTED, 0, {})
    await backbone.append(task_id, EventType.REQUEST_OUTPUT, 0, {"type": "text", "text": "x"})
    await backbone.append(task_id, EventType.REQUEST_COMPLETED, 0, {})
    return task_id


async def claim_all(backbone: Backbone, lease: float = 30.0) -> list[Any]:
    claimed, _ = await backbone.claim_deliveries(100, lease)
    return claimed


async def claimed_when_due(backbone: Backbone, timeout: float = 5.0) -> Any:
    """The one delivery that falls due next, claimed as soon as it is (polled, deadline)."""
    deadline = time.monotonic() + scaled(timeout)
    while not (claimed := await claim_all(backbone)):
        assert time.monotonic() < deadline, "no delivery fell due in time"
        await asyncio.sleep(0.01)
    (record,) = claimed
    return record


async def test_terminal_event_creates_one_delivery_per_url(store: Backbone) -> None:
    """The task's own URL first, then each configured URL, each URL once; the payload is
    {type, timestamp, data} with the terminal event's type and time and the final Task."""
    task_id = await finished_task(store)
    records, total = await store.list_deliveries(status=None, limit=10, offset=0)
    assert total == 3
    by_id = {r.id: r for r in records}
    prefix = "msg_" + task_id.removeprefix("tsk_") + "_"
    assert {i: r.url for i, r in by_id.items()} == {
        prefix + "0": OWN,
        prefix + "1": GLOBAL[0],
        prefix + "2": GLOBAL[2],
    }
    log = await store.read_events(task_id, 0, 100)
    assert log is not None
    terminal = json.loads(log.events[-1].json)
    stored = await store.get_task(task_id)
    assert stored is not None
    for record in records:
        assert record.status is DeliveryStatus.PENDING
        assert record.type == "task.completed"
        assert record.task_id == task_id
        assert record.attempts == 0
        payload = json.loads(record.payload)
        assert list(payload) == ["type", "timestamp", "data"]
        assert payload["type"] == "task.completed"
        assert payload["timestamp"] == terminal["time"]
        assert payload["data"] == terminal["data"] == to_builtins(stored.task)


async def test_cancel_creates_a_cancelled_delivery(store: Backbone) -> None:
    """A cancel (DELETE, WS cancel) is a terminal event too: its deliveries say task.cancelled."""
    store.webhook_urls = ()
    task_id = await new_task(store, OWN)
    await store.cancel(task_id)
    records, total = await store.list_deliveries(status=None, limit=10, offset=0)
    assert total == 1
    assert records[0].type == "task.cancelled"
    assert json.loads(records[0].payload)["data"]["status"] == "cancelled"


async def test_no_url_and_no_end_create_nothing(store: Backbone) -> None:
    """No URL at all creates no delivery, nor does any event before the terminal one."""
    store.webhook_urls = ()
    await finished_task(store, None)
    running = await new_task(store, OWN)
    await store.append(running, EventType.REQUEST_STARTED, 0, {})
    assert await store.list_deliveries(status=None, limit=10, offset=0) == ([], 0)


async def test_a_claim_counts_one_attempt_and_excludes_others(store: Backbone) -> None:
    """Claimed deliveries carry attempt 1, are not claimed again, and report exactly once."""
    await finished_task(store)
    claimed = await claim_all(store)
    assert sorted(r.attempts for r in claimed) == [1, 1, 1]
    assert all(r.next_attempt_at is None for r in claimed)
    assert await claim_all(store) == []
    first = claimed[0]
    done = await store.finish_attempt(first.id, 1, delivered=True, error=None, retry_at=None)
    assert done
    again = await store.finish_attempt(first.id, 1, delivered=True, error=None, retry_at=None)
    assert not again
    record = await store.get_delivery(first.id)
    assert record is not None
    assert record.status is DeliveryStatus.DELIVERED
    assert record.last_error is None


async def test_a_retry_falls_due_at_its_time(store: Backbone) -> None:
    """A failed attempt scheduled for later is not claimable before then, and then is."""
    store.webhook_urls = ()
    await finished_task(store)
    (record,) = await claim_all(store)
    retry_at = time.time() + scaled(0.4)
    await store.finish_attempt(record.id, 1, delivered=False, error="HTTP 500", retry_at=retry_at)
    claimed, next_due = await store.claim_deliveries(10, 30.0)
    assert claimed == []
    assert next_due == pytest.approx(retry_at, abs=0.01)
    pending = await store.get_delivery(record.id)
    assert pending is not None
    assert pending.last_error == "HTTP 500"
    assert pending.next_attempt_at == pytest.approx(retry_at, abs=0.01)
    again = await claimed_when_due(store)
    assert time.time() >= retry_at - 0.01  # not before its time (Redis scores are in ms)
    assert (again.id, again.attempts) == (record.id, 2)


async def test_a_lapsed_claim_is_taken_over_as_the_next_attempt(store: Backbone) -> None:
    """A claim whose lease lapsed (its process died) is claimed again as attempt 2, and the
    late report of attempt 1 is refused."""
    store.webhook_urls = ()
    await finished_task(store)
    lease = scaled(0.2)
    claimed_at = time.time()
    (record,) = await claim_all(store, lease=lease)
    assert await claim_all(store) == []
    taken = await claimed_when_due(store)
    assert time.time() >= claimed_at + lease - 0.01  # not before the lease lapsed
    assert (taken.id, taken.attempts) == (record.id, 2)
    late = await store.finish_attempt(record.id, 1, delivered=True, error=None, retry_at=None)
    assert not late
    assert await store.finish_attempt(record.id, 2, delivered=True, error=None, retry_at=None)


async def test_failed_then_retried_by_hand(store: Backbone) -> None:
    """A dead letter is listed as failed; a manual retry makes it due now as a new round."""
    store.webhook_urls = ()
    await finished_task(store)
    (record,) = await claim_all(store)
    await store.finish_attempt(record.id, 1, delivered=False, error="HTTP 503", retry_at=None)
    failed, total = await store.list_deliveries(status=DeliveryStatus.FAILED, limit=10, offset=0)
    assert total == 1
    assert (failed[0].id, failed[0].attempts, failed[0].last_error) == (record.id, 1, "HTTP 503")
    assert await store.list_deliveries(status=DeliveryStatus.PENDING, limit=10, offset=0) == (
        [],
        0,
    )
    retried = await store.retry_delivery(record.id)
    assert retried.status is DeliveryStatus.PENDING
    assert retried.round_start == 1
    assert retried.next_attempt_at is not None
    (again,) = await claim_all(store)
    assert (again.id, again.attempts, again.round_start) == (record.id, 2, 1)
    with pytest.raises(Conflict):
        await store.retry_delivery(record.id)  # an attempt is in flight
    with pytest.raises(NotFound):
        await store.retry_delivery("msg_unknown_0")


async def test_list_is_newest_first_with_pages_and_status(store: Backbone) -> None:
    """Pages of the newest deliveries first; a status filter narrows the list and its total."""
    store.webhook_urls = ()
    tasks = []
    for _ in range(3):
        tasks.append(await finished_task(store))
        await asyncio.sleep(0.005)
    page, total = await store.list_deliveries(status=None, limit=2, offset=0)
    assert total == 3
    assert [r.task_id for r in page] == tasks[::-1][:2]
    rest, _ = await store.list_deliveries(status=None, limit=2, offset=2)
    assert [r.task_id for r in rest] == tasks[:1]
    (first, *_) = await claim_all(store)
    await store.finish_attempt(first.id, 1, delivered=True, error=None, retry_at=None)
    assert (await store.list_deliveries(status=DeliveryStatus.DELIVERED, limit=9, offset=0))[1] == 1
    assert (await store.list_deliveries(status=DeliveryStatus.PENDING, limit=9, offset=0))[1] == 2


async def test_delivery_listeners_hear_new_deliveries(store: Backbone) -> None:
    """A process that finishes a task wakes its own dispatcher."""
    heard: list[int] = []
    store.add_delivery_listener(lambda: heard.append(1))
    await finished_task(store)
    assert heard


@pytest.mark.parametrize("backbone_name", ["redis"])
async def test_two_processes_never_claim_the_same_attempt(
    request: pytest.FixtureRequest, backbone_name: str
) -> None:
    """Two Redis backbones claiming at once split the deliveries: no attempt is claimed twice."""
    request.getfixturevalue("redis_server").flush()
    one, two = make(request, backbone_name), make(request, backbone_name)
    one.webhook_urls = two.webhook_urls = ()
    await one.start()
    await two.start()
    try:
        for _ in range(40):
            await finished_task(one)
        claims: list[tuple[str, int]] = []

        async def drain(backbone: Backbone) -> None:
            deadline = time.monotonic() + scaled(10)
            while time.monotonic() < deadline:
                claimed, _ = await backbone.claim_deliveries(3, 30.0)
                claims.extend((r.id, r.attempts) for r in claimed)
                if not claimed:
                    return

        await asyncio.gather(*(drain(b) for b in (one, two, one, two)))
        assert len(claims) == 40
        assert len(set(claims)) == 40
    finally:
        await one.close()
        await two.close()
