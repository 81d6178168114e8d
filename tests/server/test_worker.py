"""The worker pool: parallel sub-requests, concurrency limits, cancel and stop.

The skills here hold until the test releases them, so concurrency is observed directly
(how many run at once), never inferred from timings.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from skillwire.server import App, Context
from tests.conftest import RunningServer, wait_until
from tests.server.conftest import events_of, finished, in_flight, queued_items, task_of


class Gate:
    """Shared with the skills: how many run now, the most at once, and what was cancelled."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0
        self.started: list[int] = []
        self.cancelled: list[int] = []
        self.after_cancel: list[str] = []
        self.release = asyncio.Event()  # set on the server's loop, by open()

    def open(self, server: RunningServer) -> None:
        """Let every held skill finish."""
        server.call_soon(self.release.set)

    def app(self) -> App:
        gated = App("gated")

        @gated.skill()
        async def hold(i: int) -> dict[str, Any]:
            self.now += 1
            self.most = max(self.most, self.now)
            self.started.append(i)
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.cancelled.append(i)
                raise
            finally:
                self.now -= 1
            return {"type": "held", "i": i}

        @gated.skill()
        async def stubborn(ctx: Context) -> dict[str, Any]:
            """Swallows its cancellation and tries to emit more: that must be discarded."""
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.cancelled.append(ctx.index)
                try:
                    await ctx.output({"type": "late"})
                finally:
                    self.after_cancel.append("output returned or raised")
            return {"type": "late-return"}

        return gated


def start_call(server: RunningServer, skill: str, requests: list[dict[str, Any]]) -> str:
    with server.client() as client:
        response = client.post(
            f"/api/v1/apps/gated/{skill}",
            json={"requests": requests},
            headers={"Prefer": "respond-async"},
        )
    assert response.status_code == 202, response.text
    task_id: str = response.json()["task_id"]
    return task_id


def test_sub_requests_run_in_parallel(server_factory: Callable[..., RunningServer]) -> None:
    """The five requests of one call run at the same time (default max_parallel 5)."""
    gate = Gate()
    server = server_factory(apps=[gate.app()])
    task_id = start_call(server, "hold", [{"i": i} for i in range(5)])
    wait_until(lambda: gate.now == 5)
    gate.open(server)
    with server.client() as client:
        task = finished(client, task_id)
    assert task["status"] == "completed"
    assert gate.most == 5
    assert [p["i"] for p in task["previews"]] == [0, 1, 2, 3, 4]


def test_max_parallel_bounds_one_call(server_factory: Callable[..., RunningServer]) -> None:
    """With max_parallel 2, at most two requests of a call run at once; all of them finish."""
    gate = Gate()
    server = server_factory({"max_parallel": 2}, apps=[gate.app()])
    task_id = start_call(server, "hold", [{"i": i} for i in range(5)])
    wait_until(lambda: gate.now == 2)
    with server.client() as client:
        waiting = task_of(client, task_id)
        assert [r["status"] for r in waiting["requests"]].count("running") == 2
        assert [r["status"] for r in waiting["requests"]].count("queued") == 3
        gate.open(server)
        task = finished(client, task_id)
    assert task["status"] == "completed"
    assert gate.most == 2
    assert sorted(gate.started) == [0, 1, 2, 3, 4]
    assert [p["i"] for p in task["previews"]] == [0, 1, 2, 3, 4]


def test_concurrency_bounds_the_process(server_factory: Callable[..., RunningServer]) -> None:
    """concurrency is the process-wide limit: two calls of two requests run two at a time."""
    gate = Gate()
    server = server_factory({"concurrency": 2}, apps=[gate.app()])
    first = start_call(server, "hold", [{"i": 0}, {"i": 1}])
    second = start_call(server, "hold", [{"i": 2}, {"i": 3}])
    wait_until(lambda: gate.now == 2)
    with server.client() as client:
        assert task_of(client, second)["status"] == "queued"
        gate.open(server)
        assert finished(client, first)["status"] == "completed"
        assert finished(client, second)["status"] == "completed"
    assert gate.most == 2


def test_cancel_interrupts_running_sub_requests(
    server_factory: Callable[..., RunningServer],
) -> None:
    """DELETE interrupts every running sub-request of the task within 1 s."""
    gate = Gate()
    server = server_factory(apps=[gate.app()])
    task_id = start_call(server, "hold", [{"i": 0}, {"i": 1}, {"i": 2}])
    wait_until(lambda: gate.now == 3)
    with server.client() as client:
        response = client.delete(f"/api/v1/tasks/{task_id}")
        assert response.json()["status"] == "cancelled"
        wait_until(lambda: sorted(gate.cancelled) == [0, 1, 2], timeout=1.0)
        assert gate.now == 0
        assert task_of(client, task_id)["last_seq"] == response.json()["last_seq"]


def test_output_after_cancel_is_discarded(server_factory: Callable[..., RunningServer]) -> None:
    """A skill that ignores its cancellation and emits more has that output discarded."""
    gate = Gate()
    server = server_factory(apps=[gate.app()])
    task_id = start_call(server, "stubborn", [{}])
    with server.client() as client:
        wait_until(lambda: task_of(client, task_id)["status"] == "running")
        cancelled = client.delete(f"/api/v1/tasks/{task_id}").json()
        wait_until(lambda: gate.after_cancel != [], timeout=1.0)
        wait_until(lambda: in_flight(server) == 0)
        after = task_of(client, task_id)
    assert after == cancelled
    assert after["previews"] == []
    assert [e["type"] for e in events_of(server, task_id)][-1] == "task.cancelled"


def test_stop_interrupts_running_sub_requests(
    server_factory: Callable[..., RunningServer],
) -> None:
    """Stopping the server cancels the sub-requests it runs; none is left behind on the loop."""
    gate = Gate()
    server = server_factory(apps=[gate.app()])
    start_call(server, "hold", [{"i": 0}, {"i": 1}])
    wait_until(lambda: gate.now == 2)
    server.stop()
    assert not server.thread.is_alive()
    assert sorted(gate.cancelled) == [0, 1]
    assert gate.now == 0


def test_worker_pool_counts_in_flight(server_factory: Callable[..., RunningServer]) -> None:
    """in_flight is the number of sub-requests running in this process."""
    gate = Gate()
    server = server_factory(apps=[gate.app()])
    task_id = start_call(server, "hold", [{"i": 0}, {"i": 1}, {"i": 2}])
    wait_until(lambda: in_flight(server) == 3)
    gate.open(server)
    with server.client() as client:
        finished(client, task_id)
    wait_until(lambda: in_flight(server) == 0)


def test_no_workers_leaves_tasks_queued(server_factory: Callable[..., RunningServer]) -> None:
    """With workers off (--no-workers) a call is accepted and stays queued."""
    server = server_factory({"workers": False})
    assert server.runtime.workers is None
    with server.client() as client:
        response = client.post(
            "/api/v1/apps/demo/countdown", json={"requests": [{"n": 1, "interval": 0}]}
        )
        assert response.status_code == 202
        task_id = response.json()["task_id"]
        polled = client.get(f"/api/v1/tasks/{task_id}", params={"wait": 0.2}).json()
    assert polled["status"] == "queued"
    assert queued_items(server) == 1
