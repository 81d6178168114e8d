"""Retention: past the window a task id answers 410 EXPIRED, told apart from 404 never-issued."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.conftest import RunningServer, wait_until
from tests.server.conftest import assert_error, start_countdown, task_of

ECHO = "/api/v1/apps/demo/echo"


def expire(server: RunningServer) -> None:
    """Make the backbone forget what is past retention now (redis expires keys by itself)."""
    backbone = server.runtime.backbone
    if hasattr(backbone, "sweep"):  # the memory backbone sweeps once a minute: do it now
        server.call_soon(lambda: backbone.sweep(time.time()))


def test_expired_task_is_410_and_forged_id_is_404(
    server_factory: Callable[..., RunningServer], backbone: str
) -> None:
    """Past retention a task id answers 410 EXPIRED; a never-issued id still answers 404."""
    retention = 1.0 if backbone == "redis" else 0.2  # redis expires keys by the whole second
    server = server_factory({"retention": retention})
    with server.client() as client:
        task = client.post(ECHO, json={"requests": [{"text": "a"}]}).json()
        task_id = task["task_id"]
        created = time.time()
        assert client.get(f"/api/v1/tasks/{task_id}").status_code == 200

        def gone() -> bool:
            if time.time() <= created + retention:
                return False
            expire(server)
            return client.get(f"/api/v1/tasks/{task_id}").status_code != 200

        wait_until(gone, timeout=5)
        expired = client.get(f"/api/v1/tasks/{task_id}")
        expired_wait = client.get(f"/api/v1/tasks/{task_id}", params={"wait": 1})
        expired_delete = client.delete(f"/api/v1/tasks/{task_id}")
        forged = task_id[:-6] + ("AAAAAA" if not task_id.endswith("AAAAAA") else "BBBBBB")
        never = client.get(f"/api/v1/tasks/{forged}")
        listed = client.get("/api/v1/tasks").json()
    error = assert_error(expired, 410, "EXPIRED")
    assert error["details"]["task_id"] == task_id
    assert_error(expired_wait, 410, "EXPIRED")
    assert_error(expired_delete, 410, "EXPIRED")
    assert_error(never, 404, "NOT_FOUND")
    assert task_id not in [t["task_id"] for t in listed["items"]]
    assert listed["total"] == len(listed["items"])


@pytest.mark.parametrize("backbone", ["memory"])
def test_sweep_keeps_unfinished_tasks(server_factory: Callable[..., RunningServer]) -> None:
    """The memory backbone's sweep forgets finished tasks only: a running task survives it."""
    retention = 0.1
    server = server_factory({"retention": retention})
    with server.client() as client:
        task_id = start_countdown(client)
        done = client.post(ECHO, json={"requests": [{"text": "a"}]}).json()["task_id"]
        created = time.time()
        wait_until(lambda: time.time() > created + retention)
        server.call_soon(lambda: server.runtime.backbone.sweep(time.time() + 3600))
        assert task_of(client, task_id)["status"] in {"queued", "running"}
        assert_error(client.get(f"/api/v1/tasks/{done}"), 410, "EXPIRED")
        client.delete(f"/api/v1/tasks/{task_id}")


@pytest.mark.parametrize("backbone", ["memory"])  # servers sharing a redis share the id secret
def test_id_from_another_deployment_is_404(server_factory: Callable[..., RunningServer]) -> None:
    """An id issued by another deployment (another id secret) is never-issued here: 404."""
    first, second = server_factory(), server_factory()
    with first.client() as a, second.client() as b:
        task_id = a.post(ECHO, json={"requests": [{"text": "a"}]}).json()["task_id"]
        assert_error(b.get(f"/api/v1/tasks/{task_id}"), 404, "NOT_FOUND")


def test_expired_task_is_410_without_waiting_for_a_sweep(
    server_factory: Callable[..., RunningServer], backbone: str
) -> None:
    """Once retention has passed the id answers 410 at once: no backbone sweep is needed first."""
    retention = 1.0 if backbone == "redis" else 0.2  # redis expires keys by the whole second
    server = server_factory({"retention": retention})
    with server.client() as client:
        task_id = client.post(ECHO, json={"requests": [{"text": "a"}]}).json()["task_id"]
        finished = time.time()
        wait_until(
            lambda: (
                time.time() > finished + retention
                and client.get(f"/api/v1/tasks/{task_id}").status_code != 200
            ),
            timeout=5,
        )
        expired = client.get(f"/api/v1/tasks/{task_id}")
        events = client.get(f"/api/v1/tasks/{task_id}/events")
        cancel = client.delete(f"/api/v1/tasks/{task_id}")
        listed = client.get("/api/v1/tasks").json()
    assert_error(expired, 410, "EXPIRED")
    assert_error(events, 410, "EXPIRED")
    assert_error(cancel, 410, "EXPIRED")
    assert listed["total"] == 0
