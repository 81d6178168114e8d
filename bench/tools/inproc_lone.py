"""A lone event's path without sockets: the memory backbone's append and the WebSocket send.

Prints, in CPU microseconds per event (best of 5 passes, one process, uvloop):

- ``append``: ``MemoryBackbone.append`` of one ~230-byte ``request.output`` to a running
  task with one listener that builds the WebSocket text (lifecycle, encoding, log, fan-out);
- ``send``: an event pushed into each of 100 WebSocket pumps' outboxes and sent (the writer
  path: scheduling, batching, the send call) to a socket stand-in that completes at once.

Compare figures of the same run, or interleave before/after runs (docs/performance.md,
"What moved").

    .venv/bin/python bench/tools/inproc_lone.py [events]      # default 20,000
"""

from __future__ import annotations

import asyncio
import sys
import time
from types import SimpleNamespace
from typing import Any

import uvloop

from skillwire.protocol import EventType, format_time, lifecycle
from skillwire.server._metrics import Metrics
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


async def send_us(n: int) -> float:
    runtime: Any = SimpleNamespace(
        config=SimpleNamespace(send_queue=1000, heartbeat_interval=15.0), metrics=Metrics()
    )
    pumps = [WebSocketPump(InstantSocket(), runtime) for _ in range(100)]  # type: ignore[arg-type]
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
    print(f"append {await append_us(n):.2f} us per output (best of {PASSES})")
    print(f"send   {await send_us(n):.2f} us per lone event (best of {PASSES})")


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000))
