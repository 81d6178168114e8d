"""A real server restart mid-stream: `skillwire serve` gets SIGTERM, a new one takes its port.

The memory backbone dies with its process, so these run on the Redis backbone (skipped
where redis-server is missing): the task's log outlives the process, the work is reclaimed
by the new process's workers after the lease, and the client resumes after its last seq.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from skillwire.client import AsyncClient, Event, EventType, TransportName, event_task
from tests.client.conftest import client_options
from tests.conftest import ADMIN_KEY, RedisServer, free_port, scaled

pytestmark = pytest.mark.slow

SERVE = str(Path(sys.executable).with_name("skillwire"))


class ServerProcess:
    """`skillwire serve` on a fixed port, on a Redis backbone; restartable."""

    def __init__(self, redis_url: str, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SKILLWIRE_")}
        self.env.update(
            SKILLWIRE_API_KEY=ADMIN_KEY,
            SKILLWIRE_BACKBONE="redis",
            SKILLWIRE_REDIS_URL=redis_url,
            SKILLWIRE_HEARTBEAT_INTERVAL="0.5",
            SKILLWIRE_WORK_LEASE="1.0",
            SKILLWIRE_RATE_LIMIT="0",
            SKILLWIRE_LOG_LEVEL="warning",
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.process = subprocess.Popen(
            [SERVE, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.starts += 1
        deadline = time.monotonic() + scaled(20)
        while True:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.kill()
                raise RuntimeError("skillwire serve did not become ready")
            time.sleep(0.05)

    def terminate(self) -> int:
        """SIGTERM, as an orchestrator would; returns the exit status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(scaled(20))

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(scaled(10))


@pytest.fixture
def serve_process(redis_server: RedisServer) -> Iterator[ServerProcess]:
    redis_server.flush()
    running = ServerProcess(redis_server.url, free_port())
    running.start()
    yield running
    running.kill()


@pytest.mark.parametrize("transport", ["ws", "sse", "ndjson"])
async def test_events_resume_across_a_server_restart(
    serve_process: ServerProcess, transport: TransportName
) -> None:
    """SIGTERM mid-stream, a new process on the same port: seq 1..last, none lost or repeated."""
    options = client_options(max_reconnects=50)
    seen: list[Event] = []
    async with AsyncClient(serve_process.url, **options) as client:
        task = await client.call("demo", "countdown", [{"n": 30, "interval": 0.05}], wait=0)
        async with asyncio.timeout(scaled(60)):
            async for event in client.events(task.task_id, transport=transport):
                seen.append(event)
                output = event.type is EventType.REQUEST_OUTPUT
                if output and event.data["i"] == 5 and serve_process.starts == 1:
                    await asyncio.to_thread(serve_process.terminate)
                    await asyncio.to_thread(serve_process.start)
        final = await client.task(task.task_id)
    assert serve_process.starts == 2
    assert [e.seq for e in seen] == list(range(1, final.last_seq + 1))
    assert event_task(seen[-1]).status == final.status
    ticks = [e.data["i"] for e in seen if e.type is EventType.REQUEST_OUTPUT]
    assert ticks[-1] == 30  # the work finished in the new process
