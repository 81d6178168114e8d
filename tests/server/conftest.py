"""Helpers for the server tests: a module-wide server, the error envelope, the event log."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY, BACKBONES, RunningServer, scaled, start_server

# Module-wide servers answer hundreds of requests per key within a minute: rate limits (tested
# in test_ratelimit.py) are off on them, so that a 429 never stands in for the answer under test.
UNLIMITED: dict[str, Any] = {"rate_limit": "0"}

# httpx builds a fresh SSL context (loading the CA bundle, ~25 ms) for every client unless it
# is given one; these tests open hundreds of plain-HTTP clients, so they share one.
_TLS = ssl.create_default_context()


@pytest.fixture(scope="module", autouse=True)
def _shared_tls_context() -> Iterator[None]:
    """RunningServer.client() and async_client() reuse one SSL context in these modules."""
    plain, asynchronous = RunningServer.client, RunningServer.async_client

    def client(self: RunningServer, key: str | None = ADMIN_KEY, **kwargs: Any) -> httpx.Client:
        kwargs.setdefault("verify", _TLS)
        return plain(self, key, **kwargs)

    def async_client(
        self: RunningServer, key: str | None = ADMIN_KEY, **kwargs: Any
    ) -> httpx.AsyncClient:
        kwargs.setdefault("verify", _TLS)
        return asynchronous(self, key, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RunningServer, "client", client)
        patch.setattr(RunningServer, "async_client", async_client)
        yield


@pytest.fixture(scope="module")
def shared_server() -> Iterator[RunningServer]:
    """One memory-backbone server for a module's HTTP-layer tests (auth, errors, schemas)."""
    running = start_server({"heartbeat_interval": 0.5, **UNLIMITED})
    yield running
    running.stop()


def backbone_settings(request: pytest.FixtureRequest, backbone: str, db: int) -> dict[str, Any]:
    """Config overrides for a module-wide server on ``backbone``; redis gets its own db.

    A module-wide redis server uses a database of its own, emptied here, so that another
    module-wide server of the same module cannot see its tasks. (``server_factory`` flushes
    every database, so a module that uses these fixtures runs no redis ``server_factory`` test.)
    """
    if backbone != "redis":
        return {}
    import redis

    redis_server = request.getfixturevalue("redis_server")
    client = redis.Redis(port=redis_server.port, db=db)
    client.flushdb()
    client.close()
    return {
        "backbone": "redis",
        "redis_url": f"redis://127.0.0.1:{redis_server.port}/{db}",
        "work_lease": 2.0,
    }


@pytest.fixture(scope="module", params=BACKBONES)
def any_server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    """One server per backbone for a module's tests that create tasks and read their own."""
    running = start_server(
        {"heartbeat_interval": 0.5, **UNLIMITED, **backbone_settings(request, request.param, db=1)}
    )
    yield running
    running.stop()


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Check the error envelope of ``response`` and return its ``error`` object."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "message", "details", "request_id"}
    assert error["code"] == code
    assert isinstance(error["message"], str)
    assert error["message"]
    assert isinstance(error["details"], dict)
    assert error["request_id"] == response.headers["x-request-id"]
    return error


def run_on_server(server: RunningServer, coro: Any) -> Any:
    """Await ``coro`` on the server's event loop and return its result."""
    return asyncio.run_coroutine_threadsafe(coro, server.server_loop).result(scaled(10))


def events_of(server: RunningServer, task_id: str) -> list[dict[str, Any]]:
    """Every event of a task's log, decoded, as the backbone stores it."""
    log = run_on_server(server, server.runtime.backbone.read_events(task_id, 0, 1_000_000))
    assert log is not None, f"task {task_id} is not stored"
    return [json.loads(event.json) for event in log.events]


def finished(client: httpx.Client, task_id: str, wait: float = 10) -> dict[str, Any]:
    """The task once it is terminal (long-polls with ``?wait=``)."""
    response = client.get(f"/api/v1/tasks/{task_id}", params={"wait": scaled(wait)})
    assert response.status_code == 200, response.text
    task: dict[str, Any] = response.json()
    assert task["status"] in {"completed", "partial", "failed", "cancelled"}, task
    return task


def task_of(client: httpx.Client, task_id: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/tasks/{task_id}")
    assert response.status_code == 200, response.text
    task: dict[str, Any] = response.json()
    return task


def start_countdown(
    client: httpx.Client, n: int = 1000, interval: float = 0.05, requests: int = 1
) -> str:
    """Start a long countdown call and return its task id."""
    response = client.post(
        "/api/v1/apps/demo/countdown",
        json={"requests": [{"n": n, "interval": interval}] * requests},
    )
    assert response.status_code == 202, response.text
    task_id: str = response.json()["task_id"]
    return task_id


def queued_items(server: RunningServer) -> int:
    """Work items waiting in the backbone's queue."""
    waiting, _ = run_on_server(server, server.runtime.backbone.queue_stats())
    return int(waiting)


def in_flight(server: RunningServer) -> int:
    """Sub-requests running in the server's worker pool."""
    return int(server.call_soon(lambda: server.runtime.workers.in_flight))


def cancel_quietly(client: httpx.Client, task_id: str) -> None:
    """Cancel a task left running by a test (a finished one answers 409, which is fine)."""
    response = client.delete(f"/api/v1/tasks/{task_id}")
    assert response.status_code in (200, 409), response.text
