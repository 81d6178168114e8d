"""Two gateways and two workers on one Redis: the scaled-out deployment, process by process."""

from __future__ import annotations

import asyncio
import json
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect

from tests.conftest import ADMIN_KEY, scaled, wait_until
from tests.multiprocess.conftest import Topology, start_worker

TERMINAL = {"task.completed", "task.partial", "task.failed", "task.cancelled"}


def sse_events(base_url: str, task_id: str, after: int = 0) -> list[dict[str, Any]]:
    events = []
    with httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=scaled(60)
    ) as client:
        with client.stream(
            "GET", f"/api/v1/tasks/{task_id}/events", params={"after": after}
        ) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
    return events


def call(
    topology: Topology, gateway: int, skill: str, requests: list[dict[str, Any]], app: str = "demo"
) -> str:
    with topology.client(gateway) as client:
        response = client.post(
            f"/api/v1/apps/{app}/{skill}",
            json={"requests": requests},
            headers={"Prefer": "respond-async"},
        )
    assert response.status_code == 202, response.text
    return response.json()["task_id"]  # type: ignore[no-any-return]


async def test_ws_on_one_gateway_and_sse_on_the_other_see_the_same_events(
    topology: Topology,
) -> None:
    """A WS client on gateway A calls; an SSE client on gateway B follows: identical sequences."""
    ws_url = topology.gateways[0].url.replace("http://", "ws://") + "/api/v1/ws"
    async with connect(
        ws_url, subprotocols=["skillwire.v1"], additional_headers={"X-API-Key": ADMIN_KEY}
    ) as conn:  # type: ignore[list-item]
        await conn.send(
            json.dumps(
                {
                    "op": "call",
                    "ref": "c",
                    "app": "demo",
                    "skill": "countdown",
                    "requests": [{"n": 20, "interval": 0.05}, {"n": 10, "interval": 0.05}],
                }
            )
        )
        ws_events: list[dict[str, Any]] = []
        task_id = None
        sse_job = None
        async with asyncio.timeout(scaled(30)):
            while not ws_events or ws_events[-1]["type"] not in TERMINAL:
                for line in (await conn.recv()).split("\n"):
                    message = json.loads(line)
                    if message["op"] == "accepted":
                        task_id = message["task_id"]
                        sse_job = asyncio.create_task(
                            asyncio.to_thread(sse_events, topology.gateways[1].url, task_id)
                        )
                    elif message["op"] == "event":
                        ws_events.append(message["event"])
        assert sse_job is not None
        sse = await sse_job
    assert [e["seq"] for e in ws_events] == list(range(1, len(ws_events) + 1))
    assert ws_events == sse
    assert ws_events[-1]["type"] == "task.completed"
    assert len([e for e in ws_events if e["type"] == "request.output"]) == 30


def test_killing_a_worker_loses_no_task(topology: Topology, tmp_path: Path) -> None:
    """SIGKILL one worker while 20 countdowns run: all 20 complete, each log gap-free."""
    tasks = [call(topology, i % 2, "countdown", [{"n": 40, "interval": 0.1}]) for i in range(20)]
    with topology.client(0) as client:

        def running() -> int:
            return sum(
                client.get(f"/api/v1/tasks/{t}").json()["status"] == "running" for t in tasks
            )

        wait_until(lambda: running() >= 10, timeout=15, interval=0.2)
    victim = topology.workers[0]
    victim.signal(signal.SIGKILL)
    assert victim.process is not None
    victim.process.wait(scaled(10))
    try:
        with topology.client(1) as client:
            for task_id in tasks:
                task = client.get(f"/api/v1/tasks/{task_id}", params={"wait": 30}).json()
                assert task["status"] == "completed", task
                assert [o["i"] for o in task["previews"]] == list(range(1, 41))
        for task_id in tasks:
            events = sse_events(topology.gateways[0].url, task_id)
            assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
            assert events[-1]["type"] == "task.completed"
    finally:
        topology.workers[0] = start_worker(topology, "worker0b", Path(topology.redis_dir))


def test_cancel_on_one_gateway_interrupts_work_in_a_worker(topology: Topology) -> None:
    """DELETE through gateway B interrupts the sub-request running in a worker process."""
    marker = Path(tempfile.mkdtemp()) / "interrupted"
    task_id = call(topology, 0, "sleeper", [{"seconds": 60, "marker": str(marker)}], app="lab")
    with topology.client(1) as client:
        wait_until(
            lambda: client.get(f"/api/v1/tasks/{task_id}").json()["status"] == "running", timeout=15
        )
        cancelled_at = time.time()
        response = client.delete(f"/api/v1/tasks/{task_id}")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    wait_until(marker.exists, timeout=5)
    interrupted_at = float(marker.read_text().split()[0])
    assert interrupted_at - cancelled_at < scaled(1.0)


def test_redis_restart_during_a_stream(topology: Topology) -> None:
    """Stop and restart redis mid-stream: heartbeats go on, calls get 503, then the task completes
    and the stream delivers every event once, in order."""
    task_id = call(topology, 0, "countdown", [{"n": 30, "interval": 0.1}])
    events: list[dict[str, Any]] = []
    heartbeats_during_outage = 0
    outage = {"on": False}
    with httpx.Client(
        base_url=topology.gateways[0].url,
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=scaled(60),
    ) as client:
        with client.stream("GET", f"/api/v1/tasks/{task_id}/events") as response:
            lines = response.iter_lines()
            for line in lines:
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
                    if len(events) == 10:
                        break
            topology.stop_redis()
            outage["on"] = True
            try:
                with topology.client(1) as other:
                    ready = other.get("/readyz")
                    assert ready.status_code == 503
                    assert ready.json()["status"] == "unavailable"
                    refused = other.post(
                        "/api/v1/apps/demo/echo", json={"requests": [{"text": "x"}]}
                    )
                    assert refused.status_code == 503
                    assert refused.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
                deadline = time.monotonic() + scaled(2)
                for line in lines:
                    if line == ": heartbeat":
                        heartbeats_during_outage += 1
                    elif line.startswith("data: "):
                        events.append(json.loads(line[6:]))
                    if time.monotonic() > deadline:
                        break
            finally:
                topology.start_redis()
            for line in lines:
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
                    if events[-1]["type"] in TERMINAL:
                        break
    assert heartbeats_during_outage >= 1
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "task.completed"
    assert [o["i"] for o in events[-1]["data"]["previews"]] == list(range(1, 31))
    with topology.client(1) as client:
        wait_until(lambda: client.get("/readyz").status_code == 200, timeout=10)
