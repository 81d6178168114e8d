"""Skills for the benchmarks: ``bench/emit`` streams timestamped outputs at a set rate;
``bench/tokens`` streams one growing output, word by word, as demo/stream does.

Loaded with ``skillwire serve --apps bench.apps:bench`` (the repository root on PYTHONPATH).

``bench/emit`` waits for its start signal (a file that appears: every emitter waiting on the
same file wakes together, with one poller per process and file), then yields ``n`` outputs
``{"type": "tick", "i": i, "t": <time.time() at emission>, "pad": "xx..."}`` of about
``size`` bytes, ``rate`` per second (0: as fast as the server takes them). Subscribers
connect first, the bench touches the file, and every output carries the time it was
published for the publish->receive latency.

``bench/tokens`` waits for the same signal, then opens one streamed output
``{"type": "text", "text": ""}`` and appends ``n`` words, ``rate`` per second, each word
``"<i>:<time.time() at the append> "``: the loader splits every ``request.delta`` (several
words when appends were merged) into its words, so each word gives one emit->receive latency.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec

from skillwire.server import App, Context

__all__ = ["bench"]

bench = App("bench", "Benchmark skills (bench/)")

_POLL = 0.005
_signals: dict[str, asyncio.Future[bool]] = {}
_pollers: set[asyncio.Task[None]] = set()


async def _poll(path: str, deadline: float, done: asyncio.Future[bool]) -> None:
    try:
        while not os.path.exists(path):
            if time.monotonic() >= deadline:
                done.set_result(False)
                return
            await asyncio.sleep(_POLL)
        done.set_result(True)
    finally:
        _signals.pop(path, None)


async def wait_for_file(path: str, max_wait: float) -> bool:
    """True once ``path`` exists, False after ``max_wait`` seconds: one poller per path."""
    if os.path.exists(path):
        return True
    signal = _signals.get(path)
    if signal is None:
        signal = asyncio.get_running_loop().create_future()
        _signals[path] = signal
        poller = asyncio.get_running_loop().create_task(
            _poll(path, time.monotonic() + max_wait, signal)
        )
        _pollers.add(poller)
        poller.add_done_callback(_pollers.discard)
    return await asyncio.shield(signal)


@bench.skill(mode="long", description="Emit n timestamped outputs of ~size bytes at rate/s.")
async def emit(
    n: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 100,
    rate: Annotated[float, msgspec.Meta(ge=0)] = 0.0,
    size: Annotated[int, msgspec.Meta(ge=0, le=65_536)] = 200,
    start_file: str = "",
    max_wait: Annotated[float, msgspec.Meta(ge=0, le=600)] = 120.0,
    delay: Annotated[float, msgspec.Meta(ge=0, le=600)] = 0.0,
) -> AsyncIterator[dict[str, Any]]:
    if start_file and not await wait_for_file(start_file, max_wait):
        return  # never started: the task completes with no output (the bench counts it lost)
    if delay:
        await asyncio.sleep(delay)
    # {"type":"tick","i":N,"t":1700000000.123456,"pad":""} is about 55 bytes.
    pad = "x" * max(0, size - 55)
    start = time.monotonic()
    for i in range(1, n + 1):
        if rate > 0:
            ahead = start + (i - 1) / rate - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
        yield {"type": "tick", "i": i, "t": time.time(), "pad": pad}


@bench.skill(mode="long", description="Stream n timestamped words at rate/s as one output.")
async def tokens(
    ctx: Context,
    n: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 100,
    rate: Annotated[float, msgspec.Meta(ge=0)] = 20.0,
    start_file: str = "",
    max_wait: Annotated[float, msgspec.Meta(ge=0, le=600)] = 120.0,
) -> None:
    if start_file and not await wait_for_file(start_file, max_wait):
        return
    async with ctx.stream({"type": "text", "text": ""}) as out:
        start = time.monotonic()
        for i in range(1, n + 1):
            if rate > 0:
                ahead = start + (i - 1) / rate - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)
            await out.append(f"{i}:{time.time():.6f} ")
