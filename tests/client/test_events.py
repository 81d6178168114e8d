"""events() and stream() on every transport: each event once, in order, to the terminal one."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from skillwire.client import (
    AsyncClient,
    Client,
    Event,
    EventType,
    TaskStatus,
    TransportName,
    event_task,
    is_terminal,
)
from tests.conftest import RunningServer, eventually, scaled, wait_until

STREAMING = ["ws", "sse", "ndjson"]
ALL = [*STREAMING, "poll", "auto"]
SKILLS: dict[str, tuple[str, list[dict[str, Any]]]] = {
    "echo": ("echo", [{"text": "one"}, {"text": "two"}]),
    "countdown": ("countdown", [{"n": 20, "interval": 0.02}]),
}


async def collect(events: Any) -> list[Event]:
    async with asyncio.timeout(scaled(20)):
        return [event async for event in events]


def assert_complete(events: list[Event], last_seq: int) -> None:
    assert [e.seq for e in events] == list(range(1, last_seq + 1))
    assert is_terminal(events[-1])
    assert not any(is_terminal(e) for e in events[:-1])


@pytest.mark.parametrize("skill", SKILLS)
@pytest.mark.parametrize("transport", [*STREAMING, "auto"])
async def test_events_yield_every_seq_once_in_order(
    client: AsyncClient, transport: TransportName, skill: str
) -> None:
    """events() yields exactly seq 1..last, ending with the terminal event."""
    name, requests = SKILLS[skill]
    task = await client.call("demo", name, requests, wait=0)
    events = await collect(client.events(task.task_id, transport=transport))
    final = await client.task(task.task_id)
    assert_complete(events, final.last_seq)
    assert event_task(events[-1]).status is TaskStatus.COMPLETED
    if skill == "countdown":
        ticks = [e.data["i"] for e in events if e.type is EventType.REQUEST_OUTPUT]
        assert ticks == list(range(1, 21))


@pytest.mark.parametrize("skill", SKILLS)
async def test_polling_yields_only_the_terminal_event(client: AsyncClient, skill: str) -> None:
    """transport="poll" yields one event: the terminal one, rebuilt from the finished Task."""
    name, requests = SKILLS[skill]
    task = await client.call("demo", name, requests, wait=0)
    events = await collect(client.events(task.task_id, transport="poll"))
    final = await client.task(task.task_id)
    assert len(events) == 1
    assert events[0].type is EventType.TASK_COMPLETED
    assert events[0].seq == final.last_seq
    assert event_task(events[0]) == final


@pytest.mark.parametrize("transport", STREAMING)
async def test_events_after_resume_from_a_seq(
    client: AsyncClient, transport: TransportName
) -> None:
    """after=N yields only the events with seq > N."""
    task = await client.call("demo", "countdown", [{"n": 5, "interval": 0.01}], wait=10)
    events = await collect(client.events(task.task_id, after=4, transport=transport))
    assert [e.seq for e in events] == list(range(5, task.last_seq + 1))


@pytest.mark.parametrize("transport", ALL)
async def test_events_after_the_end_yield_nothing(
    client: AsyncClient, transport: TransportName
) -> None:
    """after >= the last seq of a finished task ends at once (no hang on a WebSocket)."""
    task = await client.call("demo", "echo", [{"text": "done"}], wait=10)
    assert task.status is TaskStatus.COMPLETED
    assert (
        await collect(client.events(task.task_id, after=task.last_seq, transport=transport)) == []
    )


@pytest.mark.parametrize("transport", [*STREAMING, "poll"])
async def test_snapshot_comes_first(client: AsyncClient, transport: TransportName) -> None:
    """snapshot=True starts with a task.snapshot, then only later events follow."""
    task = await client.call("demo", "countdown", [{"n": 30, "interval": 0.02}], wait=0)
    events = await collect(client.events(task.task_id, transport=transport, snapshot=True))
    first = events[0]
    assert first.type is EventType.TASK_SNAPSHOT
    assert event_task(first).task_id == task.task_id
    rest = [e.seq for e in events[1:]]
    assert rest == sorted(set(rest))
    assert all(seq > first.seq for seq in rest)
    assert is_terminal(events[-1])


@pytest.mark.parametrize("transport", STREAMING)
async def test_snapshot_of_a_finished_task_ends_the_stream(
    client: AsyncClient, transport: TransportName
) -> None:
    """A snapshot of a finished task is all there is: the iterator ends after it."""
    task = await client.call("demo", "echo", [{"text": "x"}], wait=10)
    events = await collect(client.events(task.task_id, transport=transport, snapshot=True))
    assert [e.type for e in events] == [EventType.TASK_SNAPSHOT]
    assert is_terminal(events[0])


@pytest.mark.parametrize("transport", [*STREAMING, "poll", "auto"])
async def test_stream_calls_and_follows(client: AsyncClient, transport: TransportName) -> None:
    """stream() starts a call and yields its events to the terminal one."""
    events = await collect(
        client.stream("demo", "countdown", [{"n": 20, "interval": 0.02}] * 2, transport=transport)
    )
    final = event_task(events[-1])
    assert final.status is TaskStatus.COMPLETED
    assert len(final.previews) == 40
    if transport == "poll":
        assert len(events) == 1
    else:
        assert_complete(events, final.last_seq)
        assert {e.index for e in events if e.type is EventType.REQUEST_OUTPUT} == {0, 1}


async def test_stream_with_idempotency_key_goes_over_rest(client: AsyncClient) -> None:
    """With an idempotency_key stream() POSTs (only REST knows the key), still on auto."""
    key = "stream-key-1"
    events = await collect(client.stream("demo", "echo", [{"text": "k"}], idempotency_key=key))
    again = await client.call("demo", "echo", [{"text": "k"}], idempotency_key=key)
    assert again.task_id == events[-1].task_id


async def test_stream_ends_partial(client: AsyncClient) -> None:
    """A partial task's stream ends with task.partial and the failure on its request."""
    events = await collect(
        client.stream(
            "demo", "echo", [{"text": "ok"}, {"text": "no", "fail": True}], transport="ws"
        )
    )
    assert events[-1].type is EventType.TASK_PARTIAL
    failed = [e for e in events if e.type is EventType.REQUEST_FAILED]
    assert failed[0].index == 1
    assert failed[0].data["error"]["code"] == "SKILL_ERROR"


@pytest.mark.parametrize("transport", STREAMING)
async def test_cancel_ends_a_followed_stream(client: AsyncClient, transport: TransportName) -> None:
    """Cancelling a task ends its stream with task.cancelled."""
    task = await client.call("demo", "countdown", [{"n": 1000, "interval": 0.02}], wait=0)
    seen: list[Event] = []
    async with asyncio.timeout(scaled(20)):
        async for event in client.events(task.task_id, transport=transport):
            seen.append(event)
            if event.type is EventType.REQUEST_OUTPUT and event.data["i"] == 3:
                await client.cancel(task.task_id)
    assert seen[-1].type is EventType.TASK_CANCELLED
    assert [e.seq for e in seen] == list(range(1, seen[-1].seq + 1))


def listeners(server: RunningServer) -> int:
    """Live listeners on the server's backbone: one per open subscription."""
    return int(server.call_soon(server.runtime.backbone.listener_count))


async def test_breaking_out_closes_the_stream(
    client: AsyncClient, shared_server: RunningServer
) -> None:
    """Leaving an events() loop early and closing it releases the connection: the server
    drops the subscription while the task still runs."""
    task = await client.call("demo", "countdown", [{"n": 1000, "interval": 0.01}], wait=0)
    events = client.events(task.task_id, transport="ws")
    async with asyncio.timeout(scaled(10)):
        async for event in events:
            if event.seq >= 3:
                break
    await eventually(lambda: listeners(shared_server) == 1)  # ours (others' have ended)
    await events.aclose()
    await eventually(lambda: listeners(shared_server) == 0)
    assert (await client.task(task.task_id)).status is TaskStatus.RUNNING
    await client.cancel(task.task_id)


@pytest.mark.parametrize("transport", ["ws", "sse", "poll"])
def test_sync_client_events_and_stream(sync_client: Client, transport: TransportName) -> None:
    """Client.events() and Client.stream() are plain iterators with the same guarantees."""
    events = list(
        sync_client.stream("demo", "countdown", [{"n": 5, "interval": 0.01}], transport=transport)
    )
    final = event_task(events[-1])
    assert final.status is TaskStatus.COMPLETED
    again = list(sync_client.events(final.task_id, transport=transport))
    if transport == "poll":
        assert [e.seq for e in again] == [final.last_seq]
    else:
        assert_complete(events, final.last_seq)
        assert [e.seq for e in again] == [e.seq for e in events]


def test_sync_iterator_closed_early(sync_client: Client, shared_server: RunningServer) -> None:
    """Closing a Client.events() iterator early stops its stream on the client's loop: the
    server drops the subscription while the task still runs."""
    task = sync_client.call("demo", "countdown", [{"n": 1000, "interval": 0.01}], wait=0)
    events = sync_client.events(task.task_id, transport="sse")
    for event in events:
        if event.seq >= 3:
            break
    wait_until(lambda: listeners(shared_server) == 1)  # ours (others' have ended)
    events.close()
    wait_until(lambda: listeners(shared_server) == 0)
    assert sync_client.task(task.task_id).status is TaskStatus.RUNNING
    sync_client.cancel(task.task_id)
