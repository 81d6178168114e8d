"""A token delta's path without sockets: ``out.append(word)`` to one follower's WebSocket.

Prints, in CPU microseconds per delta (best of 5 passes, one process, uvloop), on the memory
backbone, for a running task whose skill streams one output word by word:

- ``turn``: one turn of the event loop alone (``asyncio.sleep(0)``), which every delta below
  also pays: at 20 words/s each word goes out in a turn of its own;
- ``append``: ``MemoryBackbone.append`` of one ``request.delta`` with nobody following
  (lifecycle, text accumulation, encoding, log);
- ``context``: the same through ``StreamedOutput.append`` → ``Context`` (the skill's side);
- ``delta``: ``out.append(word)`` with one follower: a ``Subscription`` gone live pushes the
  WebSocket text into a ``WebSocketPump`` that sends it, one frame per delta, to a socket
  stand-in that completes at once (the whole server path but the frame and the ``send()``);
- ``merge``: on a shared backbone (Redis), ``out.append`` of 8 characters merged into the
  delta queued behind the skill while the store lags (the write-behind's merge alone).

Each word is ``"<i>:<time> "`` like ``bench/tokens``'s (about 20 bytes); the output grows to
``words`` words per pass, a new task each pass. Compare figures of the same run, or interleave
before/after runs (docs/performance.md, "Token deltas: where each µs goes").

    .venv/bin/python bench/tools/inproc_delta.py [words]      # default 20,000
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import uvloop

from skillwire.protocol import EventType, format_time, lifecycle
from skillwire.server._metrics import Metrics
from skillwire.server.backbone._memory import MemoryBackbone
from skillwire.server.channels._subscription import Subscription
from skillwire.server.channels._websocket import WebSocketPump, _ws_text
from skillwire.server.engine import Context

PASSES = 5


class InstantSocket:
    """Starlette's WebSocket as the pump sends to it: every send completes at once."""

    sent = 0

    async def send_text(self, data: str) -> None:
        InstantSocket.sent += 1


def _words(n: int) -> list[str]:
    now = time.time()
    return [f"{i}:{now + i / 20:.6f} " for i in range(1, n + 1)]


async def _running_task(backbone: MemoryBackbone, task_id: str) -> None:
    task, first = lifecycle.new_task(task_id, "bench", "tokens", 1, {}, format_time(0))
    await backbone.create_task(task, first, owner="o", webhook_url=None, work=[])
    await backbone.append(task_id, EventType.REQUEST_STARTED, 0, {})


async def _best(run: Callable[[int], Awaitable[None]], n: int) -> float:
    best = float("inf")
    for p in range(PASSES):
        await asyncio.sleep(0)
        start = time.process_time()
        await run(p)
        best = min(best, time.process_time() - start)
    return best / n * 1e6


async def turn_us(n: int) -> float:
    async def run(p: int) -> None:
        for _ in range(n):
            await asyncio.sleep(0)

    return await _best(run, n)


async def append_us(n: int) -> float:
    backbone = MemoryBackbone(max_events=n + 100)
    words = _words(n)

    async def run(p: int) -> None:
        task_id = f"tsk_inproc_delta_a{p}"
        await _running_task(backbone, task_id)
        await backbone.append(task_id, EventType.REQUEST_OUTPUT, 0, {"type": "text", "text": ""})
        for word in words:
            await backbone.append(
                task_id, EventType.REQUEST_DELTA, 0, {"output": 0, "field": "text", "append": word}
            )

    return await _best(run, n)


async def context_us(n: int) -> float:
    backbone = MemoryBackbone(max_events=n + 100)
    words = _words(n)

    async def run(p: int) -> None:
        task_id = f"tsk_inproc_delta_c{p}"
        await _running_task(backbone, task_id)
        ctx = Context(backbone, task_id, 0, "bench", "tokens", "o")
        async with ctx.stream({"type": "text", "text": ""}) as out:
            for word in words:
                await out.append(word)

    return await _best(run, n)


async def delta_us(n: int) -> float:
    backbone = MemoryBackbone(max_events=n + 100)
    runtime: Any = SimpleNamespace(
        config=SimpleNamespace(send_queue=1000, heartbeat_interval=15.0), metrics=Metrics()
    )
    words = _words(n)

    async def run(p: int) -> None:
        task_id = f"tsk_inproc_delta_d{p}"
        await _running_task(backbone, task_id)
        pump = WebSocketPump(InstantSocket(), runtime)  # type: ignore[arg-type]
        follower = Subscription(backbone, task_id, 0, outbox=pump.outbox, frame=_ws_text)
        following = asyncio.create_task(follower.run())
        for _ in range(3):  # caught up and live
            await asyncio.sleep(0)
        ctx = Context(backbone, task_id, 0, "bench", "tokens", "o")
        async with ctx.stream({"type": "text", "text": ""}) as out:
            await asyncio.sleep(0)
            sent = InstantSocket.sent
            for word in words:
                await out.append(word)
                await asyncio.sleep(0)  # the turn in which the pump sends it
        if InstantSocket.sent - sent != n:
            raise RuntimeError(f"{InstantSocket.sent - sent} frames for {n} deltas")
        following.cancel()

    return await _best(run, n)


class LaggingStore:
    """A shared backbone whose store answers once released: every append queues behind."""

    batches_appends = True

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def append_batch(
        self, task_id: str, index: int, batch: list[tuple[EventType, Any]]
    ) -> tuple[int, list[Any]]:
        await self.release.wait()
        return len(batch), []


async def merge_us(n: int) -> float:
    stores: list[LaggingStore] = []

    async def run(p: int) -> None:
        store = LaggingStore()
        stores.append(store)
        ctx = Context(store, f"tsk_inproc_delta_m{p}", 0, "bench", "tokens", "o")  # type: ignore[arg-type]
        ctx._outputs = 1  # output 0 emitted (its own event is not measured)
        for _ in range(n):
            await ctx.append(0, "text", "abcdefgh")

    us = await _best(run, n)
    for store in stores:
        store.release.set()
    return us


async def main(n: int) -> None:
    turn = await turn_us(n)
    print(f"turn    {turn:.2f} us per loop turn (best of {PASSES})")
    print(f"append  {await append_us(n):.2f} us per delta, backbone only, nobody following")
    print(f"context {await context_us(n):.2f} us per delta, out.append, nobody following")
    delta = await delta_us(n)
    print(f"delta   {delta:.2f} us per delta, out.append to one WebSocket follower, one turn each")
    print(f"        {delta - turn:.2f} us without the loop turn")
    print(f"merge   {await merge_us(n):.2f} us per append merged behind a lagging store")


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000))
