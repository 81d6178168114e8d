"""Scenario S (sessions, issue 16): session fan-out, many sessions, and the session write's cost.

1. **write cost** (Redis backbone, in process): ``tasks`` tasks append ``batches`` batches of
   ``batch`` events each (as a skill's write-behind does), once without a session and once
   with every task in a session. Redis' own ``INFO commandstats`` says how many scripts ran
   and the microseconds Redis spent in them; the session's log is written inside the task's
   APPEND script, so the round trips stay one per batch and only the in-script time grows.
2. **one session, many followers**: ``skillwire serve`` (memory or redis), ``followers``
   WebSocket followers of one session, ``tasks`` concurrent countdowns streaming into it,
   then the session is closed; every follower must see every session event exactly once.
3. **many sessions, one follower each**: ``sessions`` sessions, a WebSocket follower and one
   countdown each.

Processes this starts (redis-server, skillwire serve) are stopped by their PID.

    .venv/bin/python bench/tools/sessions.py [--followers 1000] [--sessions 1000] [--small]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import redis
from websockets.asyncio.client import ClientConnection, connect

KEY = "sk_bench_sessions_key_0123456789"
SKILLWIRE = str(Path(sys.executable).with_name("skillwire"))
TERMINAL = {"task.completed", "task.partial", "task.failed", "task.cancelled"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


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


# -- 1. the session write's cost -------------------------------------------------------------
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


# -- 2 and 3. followers over a real server -----------------------------------------------------
class Server:
    def __init__(self, backbone: str, redis_url: str | None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SKILLWIRE_")}
        env.update(
            {
                "SKILLWIRE_API_KEY": KEY,
                "SKILLWIRE_RATE_LIMIT": "0",
                "SKILLWIRE_LOG_LEVEL": "warning",
                "SKILLWIRE_BACKBONE": backbone,
                "SKILLWIRE_MAX_EVENTS": "100000",
            }
        )
        if redis_url:
            env["SKILLWIRE_REDIS_URL"] = redis_url
        self.proc = subprocess.Popen(
            [SKILLWIRE, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("skillwire serve did not start")
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


async def follower(ws_url: str, session_id: str, ready: asyncio.Event | None) -> list[int]:
    """Every session seq one WebSocket follower received, to session.closed."""
    seqs: list[int] = []
    async with connect(
        ws_url,
        subprotocols=["skillwire.v1"],  # type: ignore[list-item]
        additional_headers={"Authorization": f"Bearer {KEY}"},
        max_size=None,
        open_timeout=60,
    ) as conn:
        await conn.send(json.dumps({"op": "subscribe", "ref": "s", "session_id": session_id}))
        await _until_subscribed(conn)
        if ready is not None:
            ready.set()
        while True:
            frame = await asyncio.wait_for(conn.recv(), 120)
            for line in str(frame).split("\n"):
                message = json.loads(line)
                if message.get("op") == "session_event":
                    seqs.append(message["event"]["seq"])
                    if message["event"]["type"] == "session.closed":
                        return seqs


async def _until_subscribed(conn: ClientConnection) -> None:
    while True:
        message = json.loads(str(await asyncio.wait_for(conn.recv(), 60)).split("\n")[0])
        if message.get("op") == "subscribed":
            return
        if message.get("op") == "error":
            raise RuntimeError(message)


def _check(all_seqs: list[list[int]], last: int) -> dict[str, int]:
    complete = sum(1 for s in all_seqs if s == list(range(1, last + 1)))
    return {"followers": len(all_seqs), "exactly_once": complete, "session_events": last}


async def one_session(server: Server, followers: int, tasks: int, ticks: int) -> dict[str, Any]:
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=120
    ) as client:
        session_id = (await client.post("/api/v1/sessions", json={})).json()["session_id"]
        ws_url = server.url.replace("http://", "ws://") + "/api/v1/ws"
        readies = [asyncio.Event() for _ in range(followers)]
        jobs = [asyncio.create_task(follower(ws_url, session_id, r)) for r in readies]
        for ready in readies:
            await ready.wait()
        cpu0, started = cpu_seconds(server.proc.pid), time.perf_counter()
        body = {"requests": [{"n": ticks, "interval": 0.01}], "session_id": session_id}
        calls = await asyncio.gather(
            *(
                client.post(
                    "/api/v1/apps/demo/countdown", json=body, headers={"Prefer": "respond-async"}
                )
                for _ in range(tasks)
            )
        )
        for call in calls:
            await client.get(f"/api/v1/tasks/{call.json()['task_id']}", params={"wait": 60})
        closed = (await client.delete(f"/api/v1/sessions/{session_id}")).json()
        seqs = await asyncio.gather(*jobs)
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(server.proc.pid) - cpu0
    last = closed["last_seq"]  # the seq of session.closed itself
    delivered = sum(len(s) for s in seqs)
    return {
        **_check(seqs, last),
        "tasks": tasks,
        "delivered": delivered,
        "seconds": round(elapsed, 2),
        "deliveries_per_s": round(delivered / elapsed),
        "server_cpu_us_per_delivery": round(cpu * 1e6 / delivered, 1),
        "server_rss_mib": round(rss_mib(server.proc.pid), 1),
    }


async def many_sessions(server: Server, sessions: int, ticks: int) -> dict[str, Any]:
    async with httpx.AsyncClient(
        base_url=server.url,
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=120,
        limits=httpx.Limits(max_connections=50),
    ) as client:
        ids = [
            r.json()["session_id"]
            for r in await asyncio.gather(
                *(client.post("/api/v1/sessions", json={}) for _ in range(sessions))
            )
        ]
        ws_url = server.url.replace("http://", "ws://") + "/api/v1/ws"
        readies = [asyncio.Event() for _ in ids]
        jobs = [
            asyncio.create_task(follower(ws_url, s, r)) for s, r in zip(ids, readies, strict=True)
        ]
        for ready in readies:
            await ready.wait()
        cpu0, started = cpu_seconds(server.proc.pid), time.perf_counter()

        async def converse(session_id: str) -> int:
            body = {"requests": [{"n": ticks, "interval": 0.01}], "session_id": session_id}
            task = (
                await client.post(
                    "/api/v1/apps/demo/countdown", json=body, headers={"Prefer": "respond-async"}
                )
            ).json()
            await client.get(f"/api/v1/tasks/{task['task_id']}", params={"wait": 60})
            closed = (await client.delete(f"/api/v1/sessions/{session_id}")).json()
            return int(closed["last_seq"])  # the seq of session.closed itself

        lasts = await asyncio.gather(*(converse(s) for s in ids))
        seqs = await asyncio.gather(*jobs)
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(server.proc.pid) - cpu0
    complete = sum(1 for s, last in zip(seqs, lasts, strict=True) if s == list(range(1, last + 1)))
    delivered = sum(len(s) for s in seqs)
    return {
        "sessions": sessions,
        "exactly_once": complete,
        "delivered": delivered,
        "seconds": round(elapsed, 2),
        "server_cpu_us_per_delivery": round(cpu * 1e6 / delivered, 1),
        "server_rss_mib": round(rss_mib(server.proc.pid), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--followers", type=int, default=1000)
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--ticks", type=int, default=20)
    parser.add_argument("--small", action="store_true", help="100 followers, 100 sessions")
    parser.add_argument("--backbones", default="memory,redis")
    args = parser.parse_args()
    if args.small:
        args.followers, args.sessions = 100, 100
    redis_server = RedisServer()
    report: dict[str, Any] = {}
    try:
        report["write_cost"] = asyncio.run(write_cost(redis_server.url, 100, 20, 8))
        print(json.dumps({"write_cost": report["write_cost"]}, indent=1), flush=True)
        for backbone in args.backbones.split(","):
            redis.Redis.from_url(redis_server.url).flushall()
            server = Server(backbone, redis_server.url if backbone == "redis" else None)
            try:
                one = asyncio.run(one_session(server, args.followers, args.tasks, args.ticks))
                many = asyncio.run(many_sessions(server, args.sessions, args.ticks))
            finally:
                server.stop()
            report[backbone] = {"one_session": one, "many_sessions": many}
            print(json.dumps({backbone: report[backbone]}, indent=1), flush=True)
    finally:
        redis_server.stop()


if __name__ == "__main__":
    main()
