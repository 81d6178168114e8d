"""Cancelling a task: DELETE answers at once, running work stops, queued work never starts."""

from __future__ import annotations

from collections.abc import Callable

from tests.conftest import RunningServer, wait_until
from tests.server.conftest import (
    assert_error,
    events_of,
    in_flight,
    queued_items,
    start_countdown,
    task_of,
)

ECHO = "/api/v1/apps/demo/echo"


def test_cancel_a_running_countdown(server: RunningServer) -> None:
    """DELETE answers 200 cancelled at once; the work stops within 1 s and the log stays put."""
    with server.client() as client:
        task_id = start_countdown(client, n=1000, interval=0.05)
        wait_until(lambda: len(task_of(client, task_id)["previews"]) >= 2)
        response = client.delete(f"/api/v1/tasks/{task_id}")
        assert response.status_code == 200
        task = response.json()
        assert task["status"] == "cancelled"
        assert task["finished_at"] is not None
        assert [r["status"] for r in task["requests"]] == ["cancelled"]
        # The running sub-request is interrupted within 1 s...
        wait_until(lambda: in_flight(server) == 0, 1.0)
        # ...and nothing more reaches the log: the cancel event is the last one.
        after = task_of(client, task_id)
    events = events_of(server, task_id)
    assert after["last_seq"] == task["last_seq"] == events[-1]["seq"]
    assert events[-1]["type"] == "task.cancelled"
    assert events[-1]["data"]["last_seq"] == events[-1]["seq"]
    assert after["status"] == "cancelled"
    assert after["previews"] == task["previews"]


def test_cancelled_queued_requests_never_start(
    server_factory: Callable[..., RunningServer],
) -> None:
    """With one worker, cancelling while the first request runs keeps the others from starting."""
    server = server_factory({"concurrency": 1})
    with server.client() as client:
        task_id = start_countdown(client, n=1000, interval=0.05, requests=3)
        wait_until(lambda: task_of(client, task_id)["requests"][0]["status"] == "running")
        before = task_of(client, task_id)
        assert [r["status"] for r in before["requests"]] == ["running", "queued", "queued"]
        task = client.delete(f"/api/v1/tasks/{task_id}").json()
        assert [r["status"] for r in task["requests"]] == ["cancelled"] * 3

        wait_until(lambda: in_flight(server) == 0 and queued_items(server) == 0)
        # The one worker is free again: a new call runs to the end.
        later = client.post(ECHO, json={"requests": [{"text": "after"}]})
        assert later.json()["status"] == "completed"
        assert [r["status"] for r in task_of(client, task_id)["requests"]] == ["cancelled"] * 3
    started = [e.get("index") for e in events_of(server, task_id) if e["type"] == "request.started"]
    assert started == [0]


def test_cancel_a_queued_task(server_factory: Callable[..., RunningServer]) -> None:
    """A task still queued behind other work is cancelled and never runs."""
    server = server_factory({"concurrency": 1})
    with server.client() as client:
        blocker = start_countdown(client)
        wait_until(lambda: task_of(client, blocker)["status"] == "running")
        queued = start_countdown(client, n=1, interval=0)
        assert task_of(client, queued)["status"] == "queued"
        task = client.delete(f"/api/v1/tasks/{queued}").json()
        assert task["status"] == "cancelled"
        client.delete(f"/api/v1/tasks/{blocker}")
        later = client.post(ECHO, json={"requests": [{"text": "x"}]})
        assert later.json()["status"] == "completed"
    types = [e["type"] for e in events_of(server, queued)]
    assert types == ["task.queued", "task.cancelled"]


def test_cancel_a_finished_task_is_409(server: RunningServer) -> None:
    """DELETE of a finished task answers 409 CONFLICT and leaves it as it was."""
    with server.client() as client:
        task = client.post(ECHO, json={"requests": [{"text": "a"}]}).json()
        response = client.delete(f"/api/v1/tasks/{task['task_id']}")
        error = assert_error(response, 409, "CONFLICT")
        assert error["details"]["status"] == "completed"
        assert task_of(client, task["task_id"]) == task


def test_cancel_twice_is_409(server: RunningServer) -> None:
    """A second DELETE of a cancelled task answers 409 CONFLICT."""
    with server.client() as client:
        task_id = start_countdown(client)
        assert client.delete(f"/api/v1/tasks/{task_id}").status_code == 200
        assert_error(client.delete(f"/api/v1/tasks/{task_id}"), 409, "CONFLICT")
