"""Event types and WebSocket ops the client does not know (a newer server's) are skipped."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection

from skillwire.client import AsyncClient, Client, EventType, InternalError
from tests.client.conftest import client_options
from tests.client.helpers import (
    FakeWebSocketServer,
    StubEventServer,
    event,
    event_frame,
    frame,
)
from tests.client.test_follow import collect

TASK = "tsk_newer"
MADE_UP = "request.telepathy"


def newer_server_events() -> list[dict[str, Any]]:
    """A task's log as a newer server sends it: a made-up event type between known ones."""
    return [
        event(TASK, 1, "task.started", data={}),
        event(TASK, 2, MADE_UP, data={"thought": "not in this client's contract"}),
        event(TASK, 3),
        event(TASK, 4, "task.completed"),
    ]


@pytest.mark.parametrize("transport", ["sse", "ndjson"])
async def test_http_streams_skip_an_unknown_event_type(transport: Any) -> None:
    """SSE and NDJSON yield the known events around a made-up type instead of raising."""
    async with (
        StubEventServer(newer_server_events()) as stub,
        AsyncClient(stub.url, **client_options()) as client,
    ):
        events = await collect(client.events(TASK, transport=transport))
    assert [e.seq for e in events] == [1, 3, 4]
    assert events[-1].type is EventType.TASK_COMPLETED


def test_sync_client_skips_an_unknown_event_type() -> None:
    """The blocking client skips the made-up type too (it runs the same follower)."""

    async def script(conn: ServerConnection, op: dict[str, Any], attempt: int) -> None:
        await conn.send(event_frame(*newer_server_events()))
        await conn.wait_closed()

    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def serve() -> None:
        async with FakeWebSocketServer(script) as fake:
            box["url"] = fake.ws_url
            box["stop"] = asyncio.Event()
            ready.set()
            await box["stop"].wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        options = client_options(ws_url=box["url"])
        with Client("http://127.0.0.1:1", **options) as client:
            seqs = [e.seq for e in client.events(TASK, transport="ws")]
    finally:
        loop.call_soon_threadsafe(box["stop"].set)
        thread.join(10)
        loop.close()
    assert seqs == [1, 3, 4]


async def test_websocket_skips_an_unknown_event_type_and_op() -> None:
    """A WebSocket frame mixing a made-up op and a made-up event type loses no known event."""

    async def script(conn: ServerConnection, op: dict[str, Any], attempt: int) -> None:
        await conn.send(frame({"op": "presence", "who": "a newer server's op"}))
        await conn.send(event_frame(*newer_server_events()))
        await conn.wait_closed()

    async with (
        FakeWebSocketServer(script) as fake,
        AsyncClient("http://127.0.0.1:1", **client_options(ws_url=fake.ws_url)) as client,
    ):
        events = await collect(client.events(TASK, transport="ws"))
    assert [e.seq for e in events] == [1, 3, 4]


async def test_an_event_of_a_known_type_that_breaks_the_contract_still_raises() -> None:
    """Skipping is for unknown types only: a known type with a bad field is an error."""
    broken = newer_server_events()
    broken[2]["seq"] = "three"
    async with (
        StubEventServer(broken) as stub,
        AsyncClient(stub.url, **client_options(max_reconnects=0)) as client,
    ):
        with pytest.raises(InternalError):
            await collect(client.events(TASK, transport="ndjson"))
