"""C-idle-task without sockets: the Python memory each running task nobody follows holds.

Creates N ``bench/emit`` tasks (each waiting for a start file that never comes) through
skillwire's ASGI app in this process, workers included, and prints the bytes tracemalloc
traced per task and the largest allocation sites (one frame each). The memory backbone, or
Redis with ``--redis-url`` (the worker runs in this process then: the figure is gateway and
worker together, with the task's state in Redis). Traced bytes, not RSS: what the code holds,
without the allocator's slack (bench/run's C-idle-task reports RSS).

    .venv/bin/python bench/tools/idle_tasks.py [--tasks 1000] [--top 20] [--redis-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # bench.apps
sys.path.insert(0, str(Path(__file__).resolve().parent))  # inproc_e

import inproc_e  # noqa: E402

BODY = json.dumps(
    {"requests": [{"n": 1, "start_file": "/nonexistent/never", "max_wait": 300}]}
).encode()


async def _create(app: Any) -> None:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = inproc_e._scope()
    scope["path"] = "/api/v1/apps/bench/emit"
    scope["raw_path"] = scope["path"].encode()
    scope["headers"] = [
        *(h for h in inproc_e.HEADERS if h[0] != b"content-length"),
        (b"content-length", str(len(BODY)).encode()),
        (b"prefer", b"respond-async"),
    ]
    await app(scope, receive, send)
    if sent[0]["status"] not in (200, 202):
        raise SystemExit(f"the call answered {sent[0]['status']}: {sent[1]['body'][:200]!r}")


def _site(frame: tracemalloc.Frame) -> str:
    name = frame.filename
    for cut in ("site-packages/", "/server/skillwire/", "/protocol/skillwire/", "python3.11/"):
        name = name.split(cut)[-1]
    return f"{name}:{frame.lineno}"


async def main(tasks: int, top: int, redis_url: str | None) -> None:
    os.environ.update(
        {
            "SKILLWIRE_API_KEY": inproc_e.KEY,
            "SKILLWIRE_BACKBONE": "redis" if redis_url else "memory",
            "SKILLWIRE_REDIS_URL": redis_url or "",
            "SKILLWIRE_RATE_LIMIT": "0",
            "SKILLWIRE_LOG_LEVEL": "warning",
            "SKILLWIRE_CONCURRENCY": str(tasks + 100),
        }
    )
    from skillwire.server import create_app

    if redis_url:
        import redis.asyncio

        client = redis.asyncio.Redis.from_url(redis_url)
        await client.flushdb()  # a worker group left from an earlier run would take the work
        await client.aclose()

    app = create_app(None, ["bench.apps:bench"])
    lifespan = await inproc_e._start(app)
    for _ in range(50):  # warm-up: one-time costs stay out
        await _create(app)
    await asyncio.sleep(0.5)
    gc.collect()
    tracemalloc.start(1)
    before = tracemalloc.take_snapshot()
    for _ in range(tasks):
        await _create(app)
    await asyncio.sleep(1.0)  # every task claimed and waiting
    gc.collect()
    stats = tracemalloc.take_snapshot().compare_to(before, "lineno")
    total = sum(s.size_diff for s in stats)
    print(f"traced per idle task: {total / tasks:.0f} B ({total / tasks / 1024:.2f} KiB)")
    for s in stats[:top]:
        print(
            f"  {s.size_diff / tasks:6.0f} B {s.count_diff / tasks:6.2f} obj  {_site(s.traceback[0])}"
        )
    lifespan.cancel()


if __name__ == "__main__":
    import uvloop

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument(
        "--redis-url", default=None, help="a redis-server of your own (its database is flushed)"
    )
    args = parser.parse_args()
    uvloop.run(main(args.tasks, args.top, args.redis_url))
