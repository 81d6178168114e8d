"""The WebSocket pump's sending: a lone event goes out without a writer task, and a send
that has to wait for the transport is finished by one, in order, each message once."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from skillwire.server._metrics import Metrics
from skillwire.server.channels._websocket import WebSocketPump
from tests.conftest import scaled


class GatedWebSocket:
    """Starlette's WebSocket as far as the writer uses it: ``send_text`` completes at once
    while the gate is open, and waits for it (as uvicorn waits for a paused transport) while
    it is closed."""

    def __init__(self) -> None:
        self.frames: list[str] = []
        self.open = asyncio.Event()
        self.open.set()

    async def send_text(self, data: str) -> None:
        await self.open.wait()
        self.frames.append(data)


def pump_on(websocket: GatedWebSocket) -> WebSocketPump:
    config = SimpleNamespace(send_queue=1000, heartbeat_interval=15.0)
    runtime: Any = SimpleNamespace(config=config, metrics=Metrics())
    return WebSocketPump(websocket, runtime)  # type: ignore[arg-type]


def messages(websocket: GatedWebSocket) -> list[str]:
    return [message for frame in websocket.frames for message in frame.split("\n")]


async def until(condition: Any) -> None:
    async with asyncio.timeout(scaled(5)):
        while not condition():
            await asyncio.sleep(0.001)


async def test_lone_events_are_sent_without_a_writer_task() -> None:
    """Events queued in one turn of the loop go out as one frame from a callback, no task."""
    websocket = GatedWebSocket()
    pump = pump_on(websocket)
    tasks_before = len(asyncio.all_tasks())
    pump.outbox.push("a")
    pump.outbox.push("b")
    assert isinstance(pump._writer, asyncio.Handle)
    assert len(asyncio.all_tasks()) == tasks_before
    await until(lambda: websocket.frames)
    assert websocket.frames == ["a\nb"]
    assert pump._writer is None


async def test_a_send_that_waits_is_finished_by_a_writer_task_in_order() -> None:
    """A send held up by the transport resumes in a writer task; what was queued meanwhile
    follows it, in order, each message exactly once, and lone sends resume afterwards."""
    websocket = GatedWebSocket()
    pump = pump_on(websocket)
    websocket.open.clear()
    pump.outbox.push("0")
    await until(lambda: isinstance(pump._writer, asyncio.Task))
    for n in range(1, 50):
        pump.outbox.push(str(n))
    assert websocket.frames == []
    websocket.open.set()
    await until(lambda: pump._writer is None)
    pump.outbox.push("50")
    await until(lambda: len(messages(websocket)) == 51)
    assert messages(websocket) == [str(n) for n in range(51)]


async def test_closing_cancels_a_send_that_waits() -> None:
    """A connection that closes while a send waits cancels it: the writer task ends."""
    websocket = GatedWebSocket()
    pump = pump_on(websocket)
    websocket.open.clear()
    pump.outbox.push("0")
    await until(lambda: isinstance(pump._writer, asyncio.Task))
    writer = pump._writer
    pump.close_code = -1  # the client went away: nothing more is sent
    await pump._finish_writing()
    assert isinstance(writer, asyncio.Task) and writer.done()
    assert websocket.frames == []
