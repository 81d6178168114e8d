"""The Python client follows sessions: calls join them, follow_session resumes exactly once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from skillwire.client import (
    AsyncClient,
    Client,
    Conflict,
    NotFound,
    SessionEvent,
    SessionEventType,
    SessionStatus,
    TransportName,
    _sessions,
)
from tests.client.conftest import client_options
from tests.client.helpers import TcpProxy
from tests.conftest import RunningServer, scaled

STREAMING = ["ws", "sse", "ndjson"]


async def collect(
    events: Any,
    *,
    cut_at: list[int] | None = None,
    proxy: TcpProxy | None = None,
    opened: list[int] | None = None,
) -> list[SessionEvent]:
    """Every event; the proxy cuts all connections at the first event at or past each seq in
    ``cut_at`` that came on a connection opened since the last cut (``opened`` grew): on a busy
    machine the events past a cut may already sit in the client's buffer, and a second cut
    among them would cut the same connection again."""
    seen: list[SessionEvent] = []
    pending = sorted(cut_at or [])
    cut_when = 0  # connections opened when we last cut
    async with asyncio.timeout(scaled(30)):
        async for item in events:
            seen.append(item)
            fresh = opened is None or len(opened) > cut_when
            if proxy is not None and pending and item.seq >= pending[0] and fresh:
                pending.pop(0)
                cut_when = len(opened) if opened is not None else 0
                proxy.cut()
    return seen


async def test_a_session_groups_calls_and_closes(shared_server: RunningServer) -> None:
    """client.session() creates one; calls through it join; close() closes it (then 409)."""
    async with AsyncClient(shared_server.url, **client_options()) as client:
        session = await client.session(title="chat")
        first = await session.call("demo", "echo", [{"text": "a"}], wait=10)
        assert first.session_id == session.session_id
        again = await client.session(session.session_id)
        assert again.session.task_ids == [first.task_id]
        page = await client.sessions(limit=1)
        assert page.items[0].session_id == session.session_id
        closed = await session.close()
        assert closed.status is SessionStatus.CLOSED
        with pytest.raises(Conflict):
            await session.call("demo", "echo", [{"text": "b"}])
        with pytest.raises(NotFound):
            await client.session("ses_nope")


@pytest.mark.parametrize("transport", STREAMING)
async def test_follow_session_resumes_after_cuts_exactly_once(
    shared_server: RunningServer, monkeypatch: pytest.MonkeyPatch, transport: TransportName
) -> None:
    """Cutting every connection twice mid-session loses and repeats no session event."""
    opened: list[int] = []
    original = _sessions.SessionFollower._open

    def spy(self: Any, name: Any, session_id: str, after: int, snapshot: bool) -> Any:
        opened.append(after)
        return original(self, name, session_id, after, snapshot)

    monkeypatch.setattr(_sessions.SessionFollower, "_open", spy)
    port = int(shared_server.url.rsplit(":", 1)[1])
    async with TcpProxy(port) as proxy, AsyncClient(proxy.url, **client_options()) as client:
        session = await client.session()
        follow = collect(
            session.follow(transport=transport), cut_at=[4, 12], proxy=proxy, opened=opened
        )
        reader = asyncio.create_task(follow)
        tasks = [
            await session.call("demo", "countdown", [{"n": 5, "interval": 0.02}], wait=0)
            for _ in range(2)
        ]
        for task in tasks:
            await client.task(task.task_id, wait=scaled(10))
        await session.close()
        events = await reader
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[-1].type is SessionEventType.SESSION_CLOSED
    joined = [e.data["task_id"] for e in events if e.type is SessionEventType.SESSION_TASK]
    assert joined == [t.task_id for t in tasks]
    assert len(opened) == 3
    assert opened[0] == 0
    assert 4 <= opened[1] < opened[2]
    assert opened[2] >= 12


async def test_follow_session_with_a_snapshot_of_a_closed_session(
    shared_server: RunningServer,
) -> None:
    """snapshot=True on a closed session yields the snapshot alone and ends."""
    async with AsyncClient(shared_server.url, **client_options()) as client:
        session = await client.session()
        task = await session.call("demo", "echo", [{"text": "a"}], wait=10)
        await session.close()
        events = await collect(session.follow(snapshot=True))
    assert [e.type for e in events] == [SessionEventType.SESSION_SNAPSHOT]
    assert [t["task_id"] for t in events[0].data["tasks"]] == [task.task_id]


def test_the_sync_client_follows_a_session(shared_server: RunningServer) -> None:
    """Client.session() and follow() work without asyncio, from a resume point."""
    with Client(shared_server.url, **client_options()) as client:
        session = client.session(title="sync")
        session.call("demo", "echo", [{"text": "a"}], wait=10)
        session.close()
        events = list(client.follow_session(session.session_id, after=1))
    assert events[0].seq == 2
    assert events[-1].type is SessionEventType.SESSION_CLOSED


@pytest.mark.parametrize("transport", ["ws", "sse"])
async def test_stream_in_a_session_joins_it(
    shared_server: RunningServer, transport: TransportName
) -> None:
    """stream(..., session_id=) calls in the session (WS call op or POST) and follows the task."""
    async with AsyncClient(shared_server.url, **client_options()) as client:
        session = await client.session()
        events = [
            e
            async for e in client.stream(
                "demo", "echo", [{"text": "a"}], transport=transport, session_id=session.session_id
            )
        ]
        joined = await session.refresh()
    assert events[-1].type == "task.completed"
    assert joined.task_ids == [events[0].task_id]
