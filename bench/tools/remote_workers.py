"""Remote workers against the same work in-process: calls/s, per-event cost, idle workers/GiB.

Starts ``skillwire serve`` (memory backbone, its own free port on 127.0.0.1) and a Python
worker process (``skillwire.client.Worker``) serving ``bench/echo`` and ``bench/ticks``, the
twins of ``demo/echo`` and ``demo/countdown``; then, in this process:

  calls   quick calls with C concurrent clients, in-process ``demo/echo`` vs remote ``bench/echo``
  events  one call whose request emits N ticks (a progress and an output each): the time from
          the call to its completion, per event, in-process ``demo/countdown`` vs ``bench/ticks``
  idle    W worker connections that said hello and wait (no work): the gateway's RSS growth per
          worker, and how many such workers fit in one GiB; W idle client WebSockets first,
          measured the same way, as the baseline

It prints the figures and the ratios (remote / in-process). Everything it starts it stops by
PID.

    .venv/bin/python bench/tools/remote_workers.py [--calls 2000] [--clients 16]
        [--ticks 5000] [--idle 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv" / "bin" / "python"
ADMIN = "sk_bench_remote_admin_0123456789"
WORKER = "sk_bench_remote_worker_0123456789"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


WORKER_SCRIPT = """
import asyncio, sys
from skillwire.client import WorkContext, Worker

worker = Worker(sys.argv[1], sys.argv[2], name="bench", app="bench", concurrency=64)

@worker.skill()
async def echo(text: str) -> dict:
    return {"type": "text", "text": text}

@worker.skill(mode="long")
async def ticks(ctx: WorkContext, n: int) -> None:
    for i in range(1, n + 1):
        await ctx.progress(i / n, f"tick {i}")
        await ctx.output({"type": "tick", "i": i})

asyncio.run(worker.run())
"""


class Gateway:
    def __init__(self, workdir: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = workdir / "skillwire.toml"
        config.write_text(
            f'api_key = "{ADMIN}"\nrate_limit = "0"\nheartbeat_interval = 60\n'
            f'log_level = "warning"\nws_auth_timeout = 60\n'
            f'[[keys]]\nname = "bench-worker"\nrole = "worker"\nkey = "{WORKER}"\n'
        )
        self.process = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "skillwire"), "serve", "--port", str(self.port),
             "--config", str(config)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        script = workdir / "worker.py"
        script.write_text(WORKER_SCRIPT)
        self.worker_script = script
        self.worker: subprocess.Popen[bytes] | None = None

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the gateway did not start")

    def start_worker(self) -> None:
        self.worker = subprocess.Popen(
            [str(PYTHON), str(self.worker_script), self.url, WORKER],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            apps = httpx.get(
                f"{self.url}/api/v1/apps", headers={"Authorization": f"Bearer {ADMIN}"}
            ).json()
            if any(item["app"] == "bench" for item in apps["items"]):
                return
            time.sleep(0.1)
        raise RuntimeError("the worker did not connect")

    def stop(self) -> None:
        for process in (self.worker, self.process):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


async def calls_per_second(url: str, skill: str, calls: int, clients: int) -> float:
    headers = {"Authorization": f"Bearer {ADMIN}", "Prefer": "wait=30"}
    body = {"requests": [{"text": "hello"}]}
    left = calls
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:

        async def one_client() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                response = await client.post(f"/api/v1/apps/{skill}", json=body)
                assert response.json()["status"] == "completed", response.text

        await asyncio.gather(*(one_client() for _ in range(min(clients, 4))))  # warm-up
        left = calls
        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        return calls / (time.perf_counter() - started)


async def seconds_per_event(url: str, skill: str, body: dict[str, Any]) -> float:
    headers = {"Authorization": f"Bearer {ADMIN}", "Prefer": "wait=120"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=180) as client:
        started = time.perf_counter()
        task = (await client.post(f"/api/v1/apps/{skill}", json={"requests": [body]})).json()
        elapsed = time.perf_counter() - started
    assert task["status"] == "completed", task["status"]
    return elapsed / task["last_seq"]


async def idle_connections(url: str, pid: int, count: int, *, workers: bool) -> float:
    """Bytes of gateway RSS per idle connection: a worker that said hello and has nothing to
    do, or (the baseline) a client WebSocket that authenticated and follows nothing."""
    path, key = ("/api/v1/workers/ws", WORKER) if workers else ("/api/v1/ws", ADMIN)
    ws_url = url.replace("http://", "ws://") + path
    hello = json.dumps(
        {"op": "hello", "name": "idle", "skills": [{"app": "idle", "skill": "noop"}]}
        if workers
        else {"op": "ping", "ref": "p"}
    )
    reply = '"welcome"' if workers else '"pong"'
    await asyncio.sleep(0.5)
    before = _rss(pid)
    conns = []
    try:
        for _ in range(count):
            conn = await connect(ws_url, additional_headers={"Authorization": f"Bearer {key}"})
            await conn.send(hello)
            while reply not in str(await conn.recv()):
                pass
            conns.append(conn)
        await asyncio.sleep(1.0)  # let the gateway settle before reading its RSS
        return (_rss(pid) - before) / count
    finally:
        for conn in conns:
            await conn.close()


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="skillwire-bench-remote-") as directory:
        gateway = Gateway(Path(directory))
        try:
            gateway.wait_ready()
            gateway.start_worker()
            url = gateway.url
            local = await calls_per_second(url, "demo/echo", args.calls, args.clients)
            remote = await calls_per_second(url, "bench/echo", args.calls, args.clients)
            print(f"calls/s ({args.clients} clients): in-process {local:,.0f}, "
                  f"remote {remote:,.0f}, ratio {remote / local:.2f}")  # fmt: skip
            ticks = {"n": args.ticks, "interval": 0}
            local_event = await seconds_per_event(url, "demo/countdown", ticks)
            remote_event = await seconds_per_event(url, "bench/ticks", {"n": args.ticks})
            print(f"per event ({args.ticks} ticks): in-process {local_event * 1e6:.1f} us, "
                  f"remote {remote_event * 1e6:.1f} us, "
                  f"ratio {remote_event / local_event:.2f}")  # fmt: skip
            pid = gateway.process.pid
            per_client = await idle_connections(url, pid, args.idle, workers=False)
            per_worker = await idle_connections(url, pid, args.idle, workers=True)
            print(f"idle workers: {per_worker / 1024:.1f} KiB each, "
                  f"{(1 << 30) / per_worker:,.0f} per GiB ({args.idle} connected); "
                  f"an idle client WebSocket, same run: {per_client / 1024:.1f} KiB")  # fmt: skip
        finally:
            gateway.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--ticks", type=int, default=5000)
    parser.add_argument("--idle", type=int, default=500)
    asyncio.run(main(parser.parse_args(sys.argv[1:] if len(sys.argv) > 1 else [])))
    os._exit(0)
