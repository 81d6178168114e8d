"""Fallback between transports and loss-free resume after dropped connections."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection

from skillwire.client import (
    AsyncClient,
    Event,
    EventType,
    TaskStatus,
    TransportError,
    TransportName,
    TransportTimeout,
    TransportUnavailable,
    Unauthorized,
    _follow,
    event_task,
)
from tests.client.conftest import client_options
from tests.client.helpers import (
    FakeWebSocketServer,
    TcpProxy,
    event,
    event_frame,
    frame,
)
from tests.conftest import RunningServer, scaled

STREAMING = ["ws", "sse", "ndjson"]
COUNTDOWN = [{"n": 20, "interval": 0.02}]


async def collect(
    events: Any, *, cut_at: set[int] | None = None, proxy: TcpProxy | None = None
) -> list[Event]:
    """Every event; the proxy cuts all connections right after each seq in ``cut_at``."""
    seen: list[Event] = []
    async with asyncio.timeout(scaled(30)):
        async for item in events:
            seen.append(item)
            if proxy is not None and cut_at and item.seq in cut_at:
                proxy.cut()
    return seen


def record_opens(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Record (transport, after) of every connection the follower opens."""
    opened: list[tuple[str, int]] = []
    original = _follow.Follower._open

    def spy(self: _follow.Follower, name: Any, task_id: str, after: int, snapshot: bool) -> Any:
        opened.append((name, after))
        return original(self, name, task_id, after, snapshot)

    monkeypatch.setattr(_follow.Follower, "_open", spy)
    return opened


# -- fallback ------------------------------------------------------------------------------


async def test_auto_falls_back_to_sse_when_websocket_is_refused(
    shared_server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A WebSocket upgrade refused (no such route) makes auto fall back to SSE."""
    options = client_options(ws_url=f"{shared_server.ws_url}/api/v1/no-such-socket")
    opened: list[tuple[str, int]] = []
    async with AsyncClient(shared_server.url, **options) as client:
        task = await client.call("demo", "countdown", COUNTDOWN, wait=0)
        with caplog.at_level(logging.INFO, logger="skillwire.client"):
            original = _follow.Follower._open

            def spy(self: _follow.Follower, name: Any, *args: Any) -> Any:
                opened.append((name, args[1]))
                return original(self, name, *args)

            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(_follow.Follower, "_open", spy)
                events = await collect(client.events(task.task_id))
        final = await client.task(task.task_id)
    assert [e.seq for e in events] == list(range(1, final.last_seq + 1))
    assert [name for name, _ in opened] == ["ws", "sse"]
    assert "falling back to sse" in caplog.text


async def test_forced_websocket_refused_raises_unavailable(shared_server: RunningServer) -> None:
    """transport="ws" does not fall back: a refused upgrade raises TransportUnavailable."""
    options = client_options(ws_url=f"{shared_server.ws_url}/nowhere")
    async with AsyncClient(shared_server.url, **options) as client:
        task = await client.call("demo", "echo", [{"text": "x"}], wait=0)
        with pytest.raises(TransportUnavailable) as info:
            await collect(client.events(task.task_id, transport="ws"))
        assert info.value.details["http_status"] == 403
        with pytest.raises(TransportUnavailable):
            await collect(client.stream("demo", "echo", [{"text": "x"}], transport="ws"))


async def test_stream_falls_back_to_rest_when_websocket_is_refused(
    shared_server: RunningServer,
) -> None:
    """stream() on auto POSTs and follows over SSE when the WebSocket is refused."""
    options = client_options(ws_url=f"{shared_server.ws_url}/nowhere")
    async with AsyncClient(shared_server.url, **options) as client:
        events = await collect(client.stream("demo", "countdown", COUNTDOWN))
    assert [e.seq for e in events] == list(range(1, events[-1].seq + 1))
    assert event_task(events[-1]).status is TaskStatus.COMPLETED


async def test_fallback_walks_the_whole_chain(
    shared_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WS refused, SSE and NDJSON unavailable: auto ends on polling and still finishes."""

    async def unavailable(*args: Any, **kwargs: Any) -> AsyncGenerator[Event, None]:
        raise TransportUnavailable("not here")
        yield  # pragma: no cover

    monkeypatch.setattr(_follow, "sse_events", unavailable)
    monkeypatch.setattr(_follow, "ndjson_events", unavailable)
    opened = record_opens(monkeypatch)
    options = client_options(ws_url=f"{shared_server.ws_url}/nowhere")
    async with AsyncClient(shared_server.url, **options) as client:
        task = await client.call("demo", "countdown", COUNTDOWN, wait=0)
        events = await collect(client.events(task.task_id))
    assert [name for name, _ in opened] == ["ws", "sse", "ndjson", "poll"]
    assert [e.type for e in events] == [EventType.TASK_COMPLETED]


async def test_transports_option_sets_the_auto_order(shared_server: RunningServer) -> None:
    """transports=("ndjson",) makes auto use NDJSON only."""
    async with AsyncClient(shared_server.url, **client_options(transports=("ndjson",))) as client:
        task = await client.call("demo", "countdown", COUNTDOWN, wait=0)
        events = await collect(client.events(task.task_id))
    assert [e.seq for e in events] == list(range(1, events[-1].seq + 1))


def test_transports_option_is_checked() -> None:
    """An unknown or empty transports order is refused at construction."""
    with pytest.raises(ValueError, match="transports"):
        AsyncClient("http://x", transports=("carrier-pigeon",))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="transports"):
        AsyncClient("http://x", transports=())


# -- resume through a real network cut ---------------------------------------------------


@pytest.mark.parametrize("transport", STREAMING)
async def test_resume_after_the_connection_is_cut(
    shared_server: RunningServer, monkeypatch: pytest.MonkeyPatch, transport: TransportName
) -> None:
    """Cutting every connection mid-stream (twice) loses and repeats nothing."""
    opened = record_opens(monkeypatch)
    port = int(shared_server.url.rsplit(":", 1)[1])
    async with TcpProxy(port) as proxy, AsyncClient(proxy.url, **client_options()) as client:
        task = await client.call("demo", "countdown", COUNTDOWN, wait=0)
        events = await collect(
            client.events(task.task_id, transport=transport),
            cut_at={5, 20},
            proxy=proxy,
        )
        final = await client.task(task.task_id)
    assert [e.seq for e in events] == list(range(1, final.last_seq + 1))
    assert [e.data["i"] for e in events if e.type is EventType.REQUEST_OUTPUT] == list(range(1, 21))
    # Each reconnect asks for what follows the last event yielded before the cut (or one
    # the old connection had already delivered).
    afters = [after for _, after in opened]
    assert len(afters) == 3
    assert afters[0] == 0
    assert 5 <= afters[1] < 20 <= afters[2]
    assert all(name == transport for name, _ in opened)
    if transport == "sse":
        assert b"last-event-id: %d" % afters[1] in proxy.upstream.lower()
    if transport == "ndjson":
        assert b"after=%d" % afters[2] in proxy.upstream


@pytest.mark.parametrize("transport", STREAMING)
async def test_following_past_the_end_of_a_running_task_ends_with_it(
    shared_server: RunningServer, monkeypatch: pytest.MonkeyPatch, transport: TransportName
) -> None:
    """events(after=beyond the last seq) of a running task ends, empty, when the task does."""
    opened = record_opens(monkeypatch)
    async with AsyncClient(shared_server.url, **client_options()) as client:
        task = await client.call("demo", "countdown", [{"n": 4, "interval": 0.2}], wait=0)
        events = await collect(client.events(task.task_id, after=1000, transport=transport))
        final = await client.task(task.task_id)
    assert events == []
    assert final.status is TaskStatus.COMPLETED
    assert opened == [(transport, 1000)]  # one stream, which ended: no reconnects


async def test_stream_resumes_after_a_cut_on_websocket(shared_server: RunningServer) -> None:
    """stream() over WS (the call op) resumes with subscribe after a cut, exactly once."""
    port = int(shared_server.url.rsplit(":", 1)[1])
    async with TcpProxy(port) as proxy, AsyncClient(proxy.url, **client_options()) as client:
        events = await collect(
            client.stream("demo", "countdown", COUNTDOWN, transport="ws"),
            cut_at={3, 30},
            proxy=proxy,
        )
    assert [e.seq for e in events] == list(range(1, events[-1].seq + 1))
    assert event_task(events[-1]).status is TaskStatus.COMPLETED
    assert proxy.accepted >= 3


async def test_sync_client_resumes_after_a_cut(shared_server: RunningServer) -> None:
    """The blocking Client resumes the same way (it runs the same follower)."""
    from skillwire.client import Client

    port = int(shared_server.url.rsplit(":", 1)[1])
    async with TcpProxy(port) as proxy:

        def follow() -> list[int]:
            with Client(proxy.url, **client_options()) as client:
                task = client.call("demo", "countdown", COUNTDOWN, wait=0)
                seqs = []
                for item in client.events(task.task_id, transport="ws"):
                    seqs.append(item.seq)
                    if item.seq == 6:
                        proxy_loop.call_soon_threadsafe(proxy.cut)
                return seqs

        proxy_loop = asyncio.get_running_loop()
        seqs = await asyncio.to_thread(follow)
    assert seqs == list(range(1, seqs[-1] + 1))


async def test_server_gone_for_good_gives_up(shared_server: RunningServer) -> None:
    """When reconnects keep failing, the iterator raises TransportError after max_reconnects."""
    port = int(shared_server.url.rsplit(":", 1)[1])
    async with TcpProxy(port) as proxy:
        options = client_options(max_reconnects=2)
        async with AsyncClient(proxy.url, **options) as client:
            task = await client.call("demo", "countdown", [{"n": 1000, "interval": 0.02}], wait=0)

            async def follow_until_gone() -> None:
                async with asyncio.timeout(scaled(20)):
                    async for item in client.events(task.task_id, transport="sse"):
                        if item.seq == 3:
                            proxy.refuse = 1000  # every reconnect is dropped from now on
                            proxy.cut()

            with pytest.raises(TransportError) as info:
                await follow_until_gone()
            assert info.value.temporary
            assert proxy.refuse == 1000 - 2  # two reconnects, both refused
            proxy.refuse = 0
            await client.cancel(task.task_id)


# -- the WebSocket protocol, scripted --------------------------------------------------------


TASK = "tsk_fake"


@pytest.mark.parametrize("code", [1012, 1013])
async def test_websocket_close_1012_1013_reconnects_and_resumes(code: int) -> None:
    """A 1012/1013 close reconnects, subscribes after the last seq and drops replays."""

    async def script(conn: ServerConnection, op: dict[str, Any], attempt: int) -> None:
        if attempt == 0:
            # several messages in one frame, then a heartbeat, then the close
            await conn.send(event_frame(*(event(TASK, s) for s in (1, 2, 3))))
            await conn.send(frame({"op": "heartbeat", "time": "2026-01-01T00:00:00.000000Z"}))
            await conn.close(code, "restarting")
        else:
            assert op["after"] == 3
            # a replay of seq 3 (must be dropped), then the rest
            await conn.send(
                event_frame(event(TASK, 3), event(TASK, 4), event(TASK, 5, "task.completed"))
            )
            await conn.wait_closed()

    async with (
        FakeWebSocketServer(script) as fake,
        AsyncClient("http://127.0.0.1:1", **client_options(ws_url=fake.ws_url)) as client,
    ):
        events = await collect(client.events(TASK, transport="ws"))
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert [op["after"] for op in fake.ops] == [0, 3]
    assert all(op["op"] == "subscribe" and op["task_id"] == TASK for op in fake.ops)
    assert fake.headers[0]["authorization"] == "Bearer sk_test_admin"


async def test_silence_past_three_heartbeats_is_a_dropped_connection() -> None:
    """No message for three heartbeat intervals counts as a drop: reconnect and resume."""

    async def script(conn: ServerConnection, op: dict[str, Any], attempt: int) -> None:
        if attempt == 0:
            await conn.send(event_frame(event(TASK, 1), event(TASK, 2)))
            await conn.wait_closed()  # silent, connection left open until the client leaves
        else:
            await conn.send(event_frame(event(TASK, 3, "task.failed")))
            await conn.wait_closed()

    async with FakeWebSocketServer(script) as fake:
        options = client_options(ws_url=fake.ws_url, heartbeat_interval=0.1)
        async with AsyncClient("http://127.0.0.1:1", **options) as client:
            events = await collect(client.events(TASK, transport="ws"))
    assert [e.seq for e in events] == [1, 2, 3]
    assert [op["after"] for op in fake.ops] == [0, 2]


async def test_heartbeats_keep_a_quiet_stream_alive() -> None:
    """Heartbeats within the interval keep the connection: no reconnect, nothing yielded."""

    async def script(conn: ServerConnection, op: dict[str, Any], attempt: int) -> None:
        for _ in range(8):
            await conn.send(frame({"op": "heartbeat", "time": "2026-01-01T00:00:00.000000Z"}))
            await asyncio.sleep(0.05)
        await conn.send(event_frame(event(TASK, 1, "task.completed")))
        await conn.wait_closed()

    async with FakeWebSocketServer(script) as fake:
        options = client_options(ws_url=fake.ws_url, heartbeat_interval=0.1)
        async with AsyncClient("http://127.0.0.1:1", **options) as client:
            events = await collect(client.events(TASK, transport="ws"))
    assert [e.seq for e in events] == [1]
    assert len(fake.ops) == 1


async def test_close_4401_is_final() -> None:
    """A 4401 close raises Unauthorized at once, with no reconnect."""

    async def script(conn: ServerConnection, op: dict[str, Any], attempt: int) -> None:
        await conn.close(4401, "invalid token")

    async with (
        FakeWebSocketServer(script) as fake,
        AsyncClient("http://127.0.0.1:1", **client_options(ws_url=fake.ws_url)) as client,
    ):
        with pytest.raises(Unauthorized):
            await collect(client.events(TASK, transport="ws"))
    assert len(fake.ops) == 1


async def test_out_of_order_and_duplicate_seqs_are_dropped() -> None:
    """Any seq at or below the last yielded one is dropped; an unknown op is skipped."""

    async def script(conn: ServerConnection, op: dict[str, Any], attempt: int) -> None:
        seqs = [1, 2, 2, 1, 3, 3]
        await conn.send(frame({"op": "presence", "who": "a newer server's op"}))
        await conn.send(
            event_frame(*(event(TASK, s) for s in seqs), event(TASK, 4, "task.cancelled"))
        )
        await conn.wait_closed()

    async with (
        FakeWebSocketServer(script) as fake,
        AsyncClient("http://127.0.0.1:1", **client_options(ws_url=fake.ws_url)) as client,
    ):
        events = await collect(client.events(TASK, transport="ws"))
    assert [e.seq for e in events] == [1, 2, 3, 4]
    assert events[-1].type is EventType.TASK_CANCELLED


async def test_stream_end_without_terminal_event_reconnects() -> None:
    """A server that closes normally before the terminal event is reconnected to."""

    async def script(conn: ServerConnection, op: dict[str, Any], attempt: int) -> None:
        if attempt == 0:
            await conn.send(event_frame(event(TASK, 1)))
            await conn.close(1000)
        else:
            await conn.send(event_frame(event(TASK, 2, "task.completed")))
            await conn.wait_closed()

    async with (
        FakeWebSocketServer(script) as fake,
        AsyncClient("http://127.0.0.1:1", **client_options(ws_url=fake.ws_url)) as client,
    ):
        events = await collect(client.events(TASK, transport="ws"))
    assert [e.seq for e in events] == [1, 2]
    assert [op["after"] for op in fake.ops] == [0, 1]


async def test_websocket_read_timeout_is_a_transport_timeout() -> None:
    """With no reconnects allowed, the silent connection surfaces as TransportTimeout."""

    async def script(conn: ServerConnection, op: dict[str, Any], attempt: int) -> None:
        await conn.wait_closed()  # says nothing

    async with FakeWebSocketServer(script) as fake:
        options = client_options(ws_url=fake.ws_url, heartbeat_interval=0.05, max_reconnects=0)
        async with AsyncClient("http://127.0.0.1:1", **options) as client:
            with pytest.raises(TransportTimeout):
                await collect(client.events(TASK, transport="ws"))
