"""The Node worker (clients/js/skillwire-worker.js) serving skills through a real gateway."""

from __future__ import annotations

import asyncio
import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from skillwire.client import WorkContext, Worker
from tests.conftest import RunningServer, scaled

from .helpers import WORKER_KEY, call, finished, task_when, worker_server

Factory = Callable[..., RunningServer]
SCRIPT = Path(__file__).with_name("node_worker.mjs")
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(
    NODE is None, reason="node is not installed (scripts/test installs Debian's nodejs)"
)


def _node_flags() -> list[str]:
    """Node 20 has the global WebSocket behind a flag; 22 and later have it by default."""
    assert NODE is not None
    version = subprocess.run([NODE, "--version"], capture_output=True, text=True, check=True)
    major = int(version.stdout.strip().lstrip("v").split(".")[0])
    return ["--experimental-websocket"] if major < 22 else []


class NodeWorker:
    """node_worker.mjs as a subprocess, its stdout lines in a queue."""

    def __init__(self, server: RunningServer, key: str = WORKER_KEY) -> None:
        assert NODE is not None
        env = {**os.environ, "SKILLWIRE_URL": server.url, "SKILLWIRE_KEY": key}
        self.process = subprocess.Popen(
            [NODE, *_node_flags(), "--no-warnings", str(SCRIPT)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.strip())

    def wait_for(self, prefix: str, timeout: float = 10) -> str:
        deadline = time.monotonic() + scaled(timeout)
        while True:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise AssertionError(f"node never printed {prefix!r}") from None
            if line.startswith(prefix):
                return line

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(scaled(5))
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.reader.join(scaled(5))
        assert self.process.stdout is not None
        self.process.stdout.close()


@pytest.fixture
def node_worker() -> Iterator[Callable[..., NodeWorker]]:
    started: list[NodeWorker] = []

    def start(server: RunningServer, key: str = WORKER_KEY) -> NodeWorker:
        worker = NodeWorker(server, key)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


async def test_a_node_worker_serves_its_skills(
    server_factory: Factory, node_worker: Callable[..., NodeWorker]
) -> None:
    """Outputs, progress, streamed text, results and failures from Node reach the task."""
    server = worker_server(server_factory)
    await asyncio.to_thread(node_worker(server).wait_for, "ready wkr_")
    done = await call(server, "reverse", [{"text": "abc"}], app="node", prefer="wait=10")
    assert done.status_code == 200, done.text
    assert done.json()["previews"] == [{"type": "text", "text": "cba"}]
    spelled = await call(server, "spell", [{"text": "héllo"}], app="node")
    task = await task_when(server, spelled.json()["task_id"], finished)
    assert task["requests"][0]["output"] == [{"type": "text", "text": "héllo"}]
    assert task["requests"][0]["result"] == {"letters": 5}
    refused = await call(server, "refuse", [{"text": "nope"}], app="node", prefer="wait=10")
    error = refused.json()["requests"][0]["error"]
    assert error == {"code": "REFUSED", "message": "nope", "details": {"from": "node"}}


async def test_a_cancel_reaches_the_node_skill(
    server_factory: Factory, node_worker: Callable[..., NodeWorker]
) -> None:
    """Cancelling the task aborts the Node skill's signal within 1 s."""
    server = worker_server(server_factory)
    worker = node_worker(server)
    await asyncio.to_thread(worker.wait_for, "ready wkr_")
    response = await call(server, "wait", [{}], app="node")
    task_id = response.json()["task_id"]
    await task_when(server, task_id, lambda t: t["status"] == "running")
    async with server.async_client() as client:
        await client.delete(f"/api/v1/tasks/{task_id}")
    started = time.monotonic()
    await asyncio.to_thread(worker.wait_for, "aborted wrk_", 1.0)
    assert time.monotonic() - started < scaled(1.0)


async def test_a_python_and_a_node_worker_share_one_gateway(
    server_factory: Factory, node_worker: Callable[..., NodeWorker]
) -> None:
    """A Node worker and a Python worker serve their skills side by side."""
    server = worker_server(server_factory)
    await asyncio.to_thread(node_worker(server).wait_for, "ready wkr_")
    python = Worker(server.url, WORKER_KEY, app="py")

    @python.skill()
    async def double(n: int) -> int:
        return n * 2

    job = asyncio.create_task(python.run())
    try:
        await asyncio.wait_for(python.ready.wait(), scaled(10))
        node_answer, py_answer = await asyncio.gather(
            call(server, "reverse", [{"text": "ab"}], app="node", prefer="wait=10"),
            call(server, "double", [{"n": 21}], app="py", prefer="wait=10"),
        )
    finally:
        await python.stop()
        await asyncio.wait_for(job, scaled(5))
    assert node_answer.json()["previews"] == [{"type": "text", "text": "ba"}]
    assert py_answer.json()["previews"] == [42]


async def test_a_refused_key_stops_the_node_worker(
    server_factory: Factory, node_worker: Callable[..., NodeWorker]
) -> None:
    """A key the gateway refuses ends the Node worker (run() rejects) instead of retrying."""
    server = worker_server(server_factory)
    worker = node_worker(server, key="sk_nope")
    await asyncio.to_thread(worker.wait_for, "refused ")
    assert await asyncio.to_thread(worker.process.wait, scaled(5)) == 3


async def test_a_killed_node_workers_work_runs_on_a_python_worker_elsewhere(
    gateways: tuple[RunningServer, RunningServer], node_worker: Callable[..., NodeWorker]
) -> None:
    """Node on gateway A is killed (SIGKILL) mid-request: the Python worker on B runs it."""
    first, second = gateways
    node = node_worker(first)
    await asyncio.to_thread(node.wait_for, "ready wkr_")
    response = await call(first, "wait", [{"marker": 1}], app="node")
    task_id = response.json()["task_id"]
    await task_when(first, task_id, lambda t: t["status"] == "running")
    python = Worker(second.url, WORKER_KEY, app="node")

    @python.skill(mode="long", input_schema={"type": "object"})  # node/wait, declared alike
    async def wait(raw: dict[str, object], ctx: WorkContext) -> dict[str, object]:
        return {"ran_on": "python", "input": raw}

    job = asyncio.create_task(python.run())
    try:
        await asyncio.wait_for(python.ready.wait(), scaled(10))
        assert "node/wait" not in python.refused
        node.process.kill()  # SIGKILL: no close frame, the gateway sees the socket drop
        task = await task_when(second, task_id, finished, timeout=20)
    finally:
        await python.stop()
        await asyncio.wait_for(job, scaled(5))
    assert task["status"] == "completed"
    assert task["previews"] == [{"ran_on": "python", "input": {"marker": 1}}]


async def test_the_node_worker_reconnects_after_a_gateway_restart(
    server_factory: Factory, node_worker: Callable[..., NodeWorker]
) -> None:
    """The gateway stops, then starts again on its port: the Node worker, retrying with
    backoff while it is down, connects again (a new worker id) and serves."""
    server = worker_server(server_factory)
    port = int(server.url.rsplit(":", 1)[1])
    worker = node_worker(server)
    first = await asyncio.to_thread(worker.wait_for, "ready wkr_")
    await asyncio.to_thread(server.stop)
    again = worker_server(server_factory, port=port)
    second = await asyncio.to_thread(worker.wait_for, "ready wkr_")
    assert second != first
    done = await call(again, "reverse", [{"text": "abc"}], app="node", prefer="wait=10")
    assert done.json()["previews"] == [{"type": "text", "text": "cba"}]
