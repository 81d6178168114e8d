"""Scenario E without sockets: a quick ``demo/echo`` call driven straight into the ASGI apps.

Calls skillwire's app (memory backbone, started through its lifespan, the GC settings of
``skillwire serve``) and the bare Starlette endpoint of bench/baselines/bare_server.py, one
call at a time on uvloop, and prints microseconds per call for each: what the Python on each
side costs, with uvicorn, the loader and the sockets taken out. Same run, same process: compare
the two figures, not figures from different runs. The calls go in 7 blocks, alternating between
the two apps, and each figure is the median block's, in wall-clock and in CPU time (this
process's; on a loaded machine the CPU figure is the steadier).

    .venv/bin/python bench/tools/inproc_e.py [calls]      # default 10,000 (per app)
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[1]
KEY = "sk_inproc_e_key_0123456789"
BODY = b'{"requests":[{"text":"hello"}]}'
HEADERS = [
    (b"host", b"127.0.0.1"),
    (b"authorization", b"Bearer " + KEY.encode()),
    (b"content-type", b"application/json"),
    (b"content-length", str(len(BODY)).encode()),
]

Message = dict[str, Any]


def _scope() -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/apps/demo/echo",
        "raw_path": b"/api/v1/apps/demo/echo",
        "query_string": b"",
        "root_path": "",
        "headers": HEADERS,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def _call(app: Any) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(_scope(), receive, send)
    return sent


async def _block_us(app: Any, calls: int) -> tuple[float, float]:
    """Wall-clock and CPU microseconds per call over ``calls`` calls."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        sent = await _call(app)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if sent[0]["status"] != 200:
        raise SystemExit(f"the call answered {sent[0]['status']}: {sent[1]['body'][:200]!r}")
    return wall / calls * 1e6, cpu / calls * 1e6


async def _compare(apps: dict[str, Any], calls: int) -> dict[str, tuple[float, float]]:
    """Median wall and CPU µs per call of each app, over 7 interleaved blocks."""
    for app in apps.values():  # warm-up
        for _ in range(min(calls // 10, 500)):
            await _call(app)
    blocks: dict[str, list[tuple[float, float]]] = {name: [] for name in apps}
    for _ in range(7):
        for name, app in apps.items():
            blocks[name].append(await _block_us(app, max(calls // 7, 1)))
    return {
        name: (statistics.median(w for w, _ in got), statistics.median(c for _, c in got))
        for name, got in blocks.items()
    }


async def _start(app: Any) -> asyncio.Task[None]:
    """Run the app's lifespan until startup completes; the task keeps it alive."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    lifespan = asyncio.create_task(app(scope, inbox.get, outbox.put))
    answer = await asyncio.wait_for(outbox.get(), 30)
    if answer["type"] != "lifespan.startup.complete":
        raise SystemExit(f"startup failed: {answer}")
    return lifespan


async def main(calls: int) -> None:
    os.environ.update(
        {
            "SKILLWIRE_API_KEY": KEY,
            "SKILLWIRE_BACKBONE": "memory",
            "SKILLWIRE_RATE_LIMIT": "0",
            "SKILLWIRE_LOG_LEVEL": "warning",
        }
    )
    sys.path.insert(0, str(BENCH / "baselines"))
    import bare_server

    from skillwire.server import create_app
    from skillwire.server._cli import _tune_gc

    skillwire = create_app()
    lifespan = await _start(skillwire)
    _tune_gc()
    answer = await _call(skillwire)
    bare = bare_server.build(answer[1]["body"])  # answers the very bytes skillwire answered
    figures = await _compare({"bare": bare, "skillwire": skillwire}, calls)
    (bare_wall, bare_cpu), (sw_wall, sw_cpu) = figures["bare"], figures["skillwire"]
    print(f"bare Starlette endpoint  {bare_wall:7.1f} us/call  {bare_cpu:7.1f} us CPU")
    print(
        f"skillwire quick call     {sw_wall:7.1f} us/call  {sw_cpu:7.1f} us CPU"
        f"  ({sw_wall / bare_wall:.1f}x, CPU {sw_cpu / bare_cpu:.1f}x)"
    )
    lifespan.cancel()


if __name__ == "__main__":
    import uvloop

    uvloop.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000))
