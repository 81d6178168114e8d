"""The session write's cost on Redis (issue 16), in process, from Redis' own commandstats.

``tasks`` tasks append ``batches`` batches of ``batch`` events each (as a skill's write-behind
does), once without a session and once with every task in a session. Redis' ``INFO
commandstats`` says how many scripts ran and the microseconds Redis spent in them; the
session's log is written inside the task's APPEND script, so the round trips stay one per
batch and only the in-script time grows.

The rest of scenario S (one session with N followers, N sessions with one follower each, on
both backbones) runs in ``bench/run --only S`` (bench/harness/sessions.py).

The redis-server this starts is stopped by its PID.

    .venv/bin/python bench/tools/sessions.py [--tasks 100] [--batches 20] [--batch 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Any

import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="sw-bench-sessions-")
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
                "--maxclients",
                "10000",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"redis://127.0.0.1:{self.port}/0"
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def _evalsha(client: redis.Redis) -> tuple[int, int]:
    stats = client.info("commandstats")
    entry = stats.get("cmdstat_evalsha", {"calls": 0, "usec": 0})
    return int(entry["calls"]), int(entry["usec"])


async def write_cost(url: str, tasks: int, batches: int, batch: int) -> dict[str, Any]:
    from skillwire.protocol import EventType, Session, SessionStatus, format_time, lifecycle
    from skillwire.server.backbone.redis import RedisBackbone

    backbone = RedisBackbone(url, max_events=100_000)
    await backbone.start()
    stats = redis.Redis.from_url(url)
    secret = await backbone.id_secret()
    from skillwire.protocol import new_session_id, new_task_id

    results: dict[str, Any] = {}
    for mode in ("task-only", "session"):
        now = time.time()
        session_id = None
        if mode == "session":
            session_id = new_session_id(secret, now)
            stamp = format_time(now)
            await backbone.create_session(
                Session(session_id, None, {}, SessionStatus.OPEN, stamp, stamp, 0, []),
                owner="bench",
            )
        ids = []
        for _ in range(tasks):
            task_id = new_task_id(secret, time.time())
            task, first = lifecycle.new_task(task_id, "bench", "emit", 1, {}, format_time(now))
            task.session_id = session_id
            await backbone.create_task(task, first, owner="bench", webhook_url=None, work=[])
            await backbone.append(task_id, EventType.REQUEST_STARTED, 0, {})
            ids.append(task_id)
        calls0, usec0 = _evalsha(stats)
        started = time.perf_counter()

        async def run(task_id: str) -> None:
            for b in range(batches):
                entries = [
                    (EventType.REQUEST_OUTPUT, {"type": "tick", "i": b * batch + i})
                    for i in range(batch)
                ]
                await backbone.append_batch(task_id, 0, entries)

        await asyncio.gather(*(run(t) for t in ids))
        elapsed = time.perf_counter() - started
        calls1, usec1 = _evalsha(stats)
        total_batches = tasks * batches
        results[mode] = {
            "batches": total_batches,
            "events": total_batches * batch,
            "scripts_per_batch": round((calls1 - calls0) / total_batches, 3),
            "redis_us_per_batch": round((usec1 - usec0) / total_batches, 1),
            "redis_us_per_event": round((usec1 - usec0) / (total_batches * batch), 2),
            "wall_events_per_s": round(total_batches * batch / elapsed),
        }
    await backbone.close()
    stats.close()
    base, with_session = results["task-only"], results["session"]
    results["session_over_task_only"] = {
        "redis_time": round(with_session["redis_us_per_batch"] / base["redis_us_per_batch"], 2),
        "extra_scripts_per_batch": round(
            with_session["scripts_per_batch"] - base["scripts_per_batch"], 3
        ),
    }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    redis_server = RedisServer()
    try:
        cost = asyncio.run(write_cost(redis_server.url, args.tasks, args.batches, args.batch))
        print(json.dumps({"write_cost": cost}, indent=1), flush=True)
    finally:
        redis_server.stop()


if __name__ == "__main__":
    main()
