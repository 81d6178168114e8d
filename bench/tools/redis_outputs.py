"""Outputs per second on the redis backbone: one skill emitting N outputs in a tight loop, in
a worker pool of this process, against a redis-server of its own on a free port; the time from
the task's creation to its end, and the CPU time of this process and of redis-server.

    .venv/bin/python bench/tools/redis_outputs.py --n 20000 --repeat 5

Two output shapes: ``{"i": i}`` (no string field: nothing a delta could grow) and
``{"type": "text", "text": "word i"}`` (string fields, whose offsets APPEND records).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Coroutine
from typing import Any

import redis.asyncio as aioredis

from skillwire.protocol import format_time, lifecycle
from skillwire.server import App, Context
from skillwire.server.backbone import WorkItem
from skillwire.server.backbone.redis import RedisBackbone
from skillwire.server.engine import Registry, WorkerPool

app = App("outputs")


@app.skill()
async def numbers(ctx: Context, n: int) -> None:
    for i in range(n):
        await ctx.output({"i": i})


@app.skill()
async def texts(ctx: Context, n: int) -> None:
    for i in range(n):
        await ctx.output({"type": "text", "text": f"word {i}"})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _one(backbone: RedisBackbone, skill: str, n: int, run: int) -> float:
    task_id = f"tsk_{skill}{run}"
    task, first = lifecycle.new_task(task_id, "outputs", skill, 1, {}, format_time(0))
    item = WorkItem(task_id, "outputs", skill, "u", [0], [{"n": n}])
    pool = WorkerPool(backbone, Registry([app], max_requests=5), concurrency=4, default_timeout=600)
    await pool.start()
    try:
        t0 = time.perf_counter()
        await backbone.create_task(task, first, owner="u", webhook_url=None, work=[item])
        while True:
            stored = await backbone.get_task(task_id)
            if stored is not None and stored.task.status in lifecycle.TERMINAL_TASK_STATUSES:
                break
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - t0
    finally:
        await pool.stop()
    assert stored.task.status == "completed", stored.task.status
    assert len(stored.task.requests[0].output) == n
    return elapsed


async def redis_commands(client: Any) -> tuple[int, int]:
    """Commands Redis ran so far (those of scripts included) and the EVALSHA calls."""
    stats = await client.info("commandstats")
    calls = {name: int(value["calls"]) for name, value in stats.items()}
    return sum(v for k, v in calls.items() if k not in _NOT_COUNTED), calls.get(
        "cmdstat_evalsha", 0
    )


_NOT_COUNTED = {"cmdstat_evalsha", "cmdstat_info", "cmdstat_hgetall", "cmdstat_ping"}


async def main(args: argparse.Namespace, url: str, redis_pid: int) -> None:
    backbone = RedisBackbone(url, max_outputs=args.n, max_events=args.n + 100)
    await backbone.start()
    stats = aioredis.Redis.from_url(url)
    try:
        await _one(backbone, "numbers", 100, -1)  # warm: scripts loaded, connections open
        for run in range(args.repeat):
            for skill in ("numbers", "texts"):
                commands0, scripts0 = await redis_commands(stats)
                cpu0, rcpu0 = time.process_time(), cpu_seconds(redis_pid)
                elapsed = await _one(backbone, skill, args.n, run)
                cpu, rcpu = time.process_time() - cpu0, cpu_seconds(redis_pid) - rcpu0
                commands1, scripts1 = await redis_commands(stats)
                print(
                    f"{skill:8} n={args.n} {args.n / elapsed:9,.0f} outputs/s  "
                    f"{elapsed:6.2f} s  cpu {1e6 * cpu / args.n:5.1f} us/output  "
                    f"redis {1e6 * rcpu / args.n:5.1f} us/output  "
                    f"{(commands1 - commands0) / args.n:5.2f} commands/output  "
                    f"{scripts1 - scripts0} scripts",
                    flush=True,
                )
    finally:
        await stats.aclose()
        await backbone.close()


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    parser.add_argument("--n", type=int, default=20_000, help="outputs per task")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each shape")
    return parser.parse_args()


def with_own_redis(prefix: str, run: Callable[[str, int], Coroutine[Any, Any, None]]) -> None:
    """Start a redis-server of this tool's own on a free port, ``run(url, pid)`` against it in
    a new event loop, then stop it and remove its directory."""
    port = free_port()
    directory = tempfile.mkdtemp(prefix=prefix)
    redis: Any = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", directory],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(100):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        asyncio.run(run(f"redis://127.0.0.1:{port}/0", redis.pid))
    finally:
        redis.terminate()
        redis.wait(10)
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    arguments = _args()
    with_own_redis("skillwire-outputs-", lambda url, pid: main(arguments, url, pid))
