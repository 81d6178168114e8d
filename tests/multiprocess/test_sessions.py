"""Sessions and task trees across processes: two gateways, two workers, one Redis."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ADMIN_KEY, scaled, wait_until
from tests.multiprocess.conftest import Topology, _wait_ready


def _session(topology: Topology, gateway: int) -> str:
    with topology.client(gateway) as client:
        response = client.post("/api/v1/sessions", json={"title": "mp"})
    assert response.status_code == 201, response.text
    return response.json()["session_id"]  # type: ignore[no-any-return]


def _call(
    topology: Topology,
    gateway: int,
    app: str,
    skill: str,
    request: dict[str, Any],
    session_id: str | None = None,
) -> str:
    with topology.client(gateway) as client:
        response = client.post(
            f"/api/v1/apps/{app}/{skill}",
            json={"requests": [request], "session_id": session_id},
            headers={"Prefer": "respond-async"},
        )
    assert response.status_code == 202, response.text
    return response.json()["task_id"]  # type: ignore[no-any-return]


def test_cancelling_a_parent_cancels_children_running_in_other_workers(
    topology: Topology,
) -> None:
    """A parent on one worker awaiting 4 sleeper children (run by any worker): DELETE of the
    parent on the other gateway interrupts every child, wherever it runs."""
    marker = str(Path(tempfile.mkdtemp()) / "child")
    parent_id = _call(topology, 0, "lab", "sleepers", {"n": 4, "seconds": 60, "marker": marker})
    with topology.client(1) as client:

        def children_running() -> bool:
            task = client.get(f"/api/v1/tasks/{parent_id}").json()
            if len(task["children"]) < 4:
                return False
            return all(
                client.get(f"/api/v1/tasks/{c}").json()["status"] == "running"
                for c in task["children"]
            )

        wait_until(children_running, timeout=20)
        children = client.get(f"/api/v1/tasks/{parent_id}").json()["children"]
        assert client.delete(f"/api/v1/tasks/{parent_id}").status_code == 200
        for i in range(4):
            wait_until(Path(f"{marker}{i}").exists, timeout=10)
        for child in children:
            task = client.get(f"/api/v1/tasks/{child}", params={"wait": scaled(10)}).json()
            assert task["status"] == "cancelled"
            assert task["parent_task_id"] == parent_id
    pids = {Path(f"{marker}{i}").read_text().split()[1] for i in range(4)}
    assert pids <= {str(w.process.pid) for w in topology.workers if w.process is not None}


def test_a_session_followed_through_a_gateway_restart(topology: Topology) -> None:
    """Follow a session's SSE on gateway 0, stop it mid-way, resume on gateway 1 with
    Last-Event-ID: every session event exactly once, in order, to session.closed."""
    session_id = _session(topology, 0)
    seen: list[dict[str, Any]] = []
    first = _call(topology, 0, "demo", "countdown", {"n": 40, "interval": 0.05}, session_id)
    gateway = topology.gateways[0]
    try:
        with (
            httpx.Client(
                base_url=gateway.url,
                headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                timeout=scaled(30),
            ) as client,
            client.stream("GET", f"/api/v1/sessions/{session_id}/events") as response,
        ):
            for line in response.iter_lines():
                if line.startswith("data: "):
                    seen.append(json.loads(line[6:]))
                if len(seen) == 10:
                    gateway.stop()  # SIGTERM: the stream ends
        assert len(seen) >= 10
        second = _call(topology, 1, "demo", "echo", {"text": "after"}, session_id)
        with topology.client(1) as other:
            for task_id in (first, second):
                other.get(f"/api/v1/tasks/{task_id}", params={"wait": scaled(20)})
            assert other.delete(f"/api/v1/sessions/{session_id}").status_code == 200
            with other.stream(
                "GET",
                f"/api/v1/sessions/{session_id}/events",
                headers={"Last-Event-ID": str(seen[-1]["seq"])},
            ) as response:
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        seen.append(json.loads(line[6:]))
    finally:
        gateway.start()
        _wait_ready(gateway)
    assert [e["seq"] for e in seen] == list(range(1, len(seen) + 1))
    assert seen[-1]["type"] == "session.closed"
    wrapped = [e["data"] for e in seen if e["type"] == "task.event"]
    for task_id in (first, second):
        seqs = [e["seq"] for e in wrapped if e["task_id"] == task_id]
        assert seqs == list(range(1, len(seqs) + 1))
        assert [e for e in wrapped if e["task_id"] == task_id][-1]["type"] == "task.completed"
