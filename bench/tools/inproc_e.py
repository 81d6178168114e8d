"""Scenario E without sockets: a quick ``demo/echo`` call driven straight into the ASGI apps.

Calls skillwire's app (memory backbone, started through its lifespan, the GC settings of
``skillwire serve``) and the bare Starlette endpoint of bench/baselines/bare_server.py, one
call at a time on uvloop, and prints microseconds per call for each: what the Python on each
side costs, with uvicorn, the loader and the sockets taken out. Same run, same process: compare
the two figures, not figures from different runs.

    .venv/bin/python bench/tools/inproc_e.py [calls]      # default 10,000
"""

from __future__ import annotations

import asyncio
import os
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


async def _per_call_us(app: Any, calls: int) -> float:
    for _ in range(min(calls // 10, 500)):  # warm-up
        await _call(app)
    started = time.perf_counter()
    for _ in range(calls):
        sent = await _call(app)
    elapsed = time.perf_counter() - started
    if sent[0]["status"] != 200:
        raise SystemExit(f"the call answered {sent[0]['status']}: {sent[1]['body'][:200]!r}")
    return elapsed / calls * 1e6


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
    bare_us = await _per_call_us(bare, calls)
    skillwire_us = await _per_call_us(skillwire, calls)
    print(f"bare Starlette endpoint  {bare_us:7.1f} us/call")
    print(f"skillwire quick call     {skillwire_us:7.1f} us/call  ({skillwire_us / bare_us:.1f}x)")
    lifespan.cancel()


if __name__ == "__main__":
    import uvloop

    uvloop.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000))
