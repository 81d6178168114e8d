"""A lone event's path without sockets: the memory backbone's append and the WebSocket send.

Prints, in CPU microseconds per event (best of 5 passes, one process, uvloop):

- ``append``: ``MemoryBackbone.append`` of one ~230-byte ``request.output`` to a running
  task with one listener that builds the WebSocket text (lifecycle, encoding, log, fan-out);
- ``send``: an event pushed into each of 100 WebSocket pumps' outboxes and sent (the writer
  path: scheduling, batching, the send call) to a socket stand-in that completes at once;
- ``send via <class>``: the same down to the transport: Starlette's WebSocket over each
  WebSocket protocol class uvicorn may be given (ours, ``WebSocketConnection``, and uvicorn's
  sans-I/O class, ``WebSocketProtocol``), accepted, writing to a transport that only counts
  (the frame: building it and the write call, no system call). Both classes run in the same
  process, interleaved, so their difference is the frame's cost.

Compare figures of the same run, or interleave before/after runs (docs/performance.md,
"What moved").

    .venv/bin/python bench/tools/inproc_lone.py [events]      # default 20,000
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from types import SimpleNamespace
from typing import Any

import uvicorn
import uvloop
from starlette.websockets import WebSocket
from uvicorn.server import ServerState

from skillwire.protocol import EventType, format_time, lifecycle
from skillwire.server._metrics import Metrics
from skillwire.server._ws_connection import WebSocketConnection
from skillwire.server._ws_protocol import WebSocketProtocol
from skillwire.server.backbone._memory import MemoryBackbone
from skillwire.server.channels._websocket import WebSocketPump

PASSES = 5
OUTPUT = {"t": 1_795_435_200.123456, "n": 12, "text": "x" * 200}


class InstantSocket:
    """Starlette's WebSocket as the pump sends to it: every send completes at once."""

    sent = 0

    async def send_text(self, data: str) -> None:
        InstantSocket.sent += 1


async def append_us(n: int) -> float:
    backbone = MemoryBackbone()
    task, first = lifecycle.new_task("tsk_inproc_lone", "bench", "relay", 1, {}, format_time(0))
    await backbone.create_task(task, first, owner="o", webhook_url=None, work=[])
    await backbone.append(task.task_id, EventType.REQUEST_STARTED, 0, {})
    frames: list[str] = []
    await backbone.listen(task.task_id, lambda event: frames.append(event.ws_text))
    best = float("inf")
    for _ in range(PASSES):
        start = time.process_time()
        for _ in range(n):
            await backbone.append(task.task_id, EventType.REQUEST_OUTPUT, 0, OUTPUT)
        best = min(best, time.process_time() - start)
        frames.clear()
    return best / n * 1e6


class CountingTransport(asyncio.Transport):
    """A transport whose writes complete at once and are only counted."""

    written = 0

    def write(self, data: Any) -> None:
        CountingTransport.written += len(data)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass  # the app tasks are cancelled when the run ends

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5), "sockname": ("127.0.0.1", 80)}.get(name, default)


async def _never(scope: Any, receive: Any, send: Any) -> None:
    await asyncio.Event().wait()


_REQUEST = (
    b"GET /api/v1/ws HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade\r\n"
    b"sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
)


_STATES: list[ServerState] = []


async def accepted_socket(protocol: type[Any]) -> WebSocket:
    """Starlette's WebSocket over ``protocol``, handed a request and accepted."""
    config = uvicorn.Config(_never, log_config=None, ws=protocol)
    config.load()
    state = ServerState()
    _STATES.append(state)  # it holds the app's task: the loop keeps only a weak reference
    connection = protocol(config=config, server_state=state, app_state={})
    connection.connection_made(CountingTransport())
    connection.data_received(_REQUEST)
    socket = WebSocket(connection.scope, connection.receive, connection.send)
    await socket.accept()
    return socket


async def send_us(n: int, protocol: type[Any] | None = None) -> float:
    runtime: Any = SimpleNamespace(
        config=SimpleNamespace(send_queue=1000, heartbeat_interval=15.0), metrics=Metrics()
    )
    sockets = [
        InstantSocket() if protocol is None else await accepted_socket(protocol) for _ in range(100)
    ]
    pumps = [WebSocketPump(socket, runtime) for socket in sockets]  # type: ignore[arg-type]
    best = float("inf")
    for _ in range(PASSES):
        start = time.process_time()
        for _ in range(n // len(pumps)):
            for pump in pumps:
                pump.outbox.push("x" * 200)
            await asyncio.sleep(0)  # the turn in which the writers run
            await asyncio.sleep(0)
        best = min(best, time.process_time() - start)
    return best / n * 1e6


async def main(n: int) -> None:
    # The idle apps are cancelled when the run ends, which both classes log as an error.
    logging.getLogger("uvicorn.error").disabled = True
    print(f"append {await append_us(n):.2f} us per output (best of {PASSES})")
    print(f"send   {await send_us(n):.2f} us per lone event (best of {PASSES})")
    for _ in range(2):  # interleaved: the machine's load weighs on both alike
        for protocol in (WebSocketProtocol, WebSocketConnection):
            us = await send_us(n, protocol)
            print(f"send via {protocol.__name__:20} {us:.2f} us per lone event (best of {PASSES})")


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000))
