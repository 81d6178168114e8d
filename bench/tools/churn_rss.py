"""Soak: WebSocket connect/close cycles against a real ``skillwire serve``, printing its RSS.

Starts ``skillwire serve`` (memory backbone) on a free 127.0.0.1 port, opens and closes
WebSocket connections (each authenticates with a header key and pings once) ``cycles`` times,
``concurrency`` at a time, and prints the server's RSS (from ``/proc``) at the start and every
``every`` cycles. The server is stopped by its PID at the end. Extra environment for the server
(``MALLOC_ARENA_MAX=2``, ``SKILLWIRE_...``) passes through from this process's environment.

    .venv/bin/python bench/tools/churn_rss.py [cycles] [concurrency] [every]
                                                # default 30,000, 50, 5,000
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from websockets.asyncio.client import connect

KEY = "sk_churn_rss_key_0123456789"
SKILLWIRE = str(Path(sys.executable).with_name("skillwire"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_mib(pid: int) -> float:
    """Resident set size of ``pid`` in MiB, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def _start(port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SKILLWIRE_API_KEY": KEY, "SKILLWIRE_RATE_LIMIT": "0"}
    env.setdefault("SKILLWIRE_LOG_LEVEL", "warning")
    process = subprocess.Popen(
        [SKILLWIRE, "serve", "--port", str(port), "--no-demo"],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("skillwire serve did not start")


async def _cycle(url: str) -> None:
    async with connect(
        url,
        subprotocols=["skillwire.v1"],  # type: ignore[list-item]
        additional_headers={"Authorization": f"Bearer {KEY}"},
    ) as conn:
        await conn.send(json.dumps({"op": "ping", "ref": "p"}))
        await conn.recv()


async def churn(pid: int, url: str, cycles: int, concurrency: int, every: int) -> None:
    done = 0
    next_report = every

    async def one_lane(count: int) -> None:
        nonlocal done, next_report
        for _ in range(count):
            await _cycle(url)
            done += 1
            if done >= next_report:
                next_report += every
                print(f"after {done:>7,} cycles: RSS {rss_mib(pid):7.1f} MiB", flush=True)

    per_lane, extra = divmod(cycles, concurrency)
    await asyncio.gather(*(one_lane(per_lane + (i < extra)) for i in range(concurrency)))


def main() -> None:
    cycles = int(sys.argv[1]) if len(sys.argv) > 1 else 30_000
    concurrency = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    every = int(sys.argv[3]) if len(sys.argv) > 3 else 5_000
    port = _free_port()
    process = _start(port)
    try:
        time.sleep(1)  # let start-up settle before the first figure
        print(f"at start:               RSS {rss_mib(process.pid):7.1f} MiB", flush=True)
        started = time.monotonic()
        asyncio.run(
            churn(process.pid, f"ws://127.0.0.1:{port}/api/v1/ws", cycles, concurrency, every)
        )
        elapsed = time.monotonic() - started
        time.sleep(2)  # connections closing on the server's side
        print(
            f"settled after {cycles:,} cycles ({cycles / elapsed:,.0f}/s): "
            f"RSS {rss_mib(process.pid):7.1f} MiB",
            flush=True,
        )
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


if __name__ == "__main__":
    main()
