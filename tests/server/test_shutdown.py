"""SIGTERM: drain, close WebSockets with 1012, end streams, leave no task running, exit 0."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import ADMIN_KEY, scaled
from tests.server.serving import serve_process as _serve


async def test_sigterm_drains_every_channel_and_exits_zero() -> None:
    """WS clients get 1012, NDJSON/SSE streams end cleanly, and the process exits 0."""
    process, url = _serve({"SKILLWIRE_SHUTDOWN_GRACE": "0.5"})
    try:
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        with httpx.Client(base_url=url, headers=headers) as client:
            task_id = client.post(
                "/api/v1/apps/demo/countdown", json={"requests": [{"n": 1000, "interval": 0.05}]}
            ).json()["task_id"]
        async with (
            connect(
                url.replace("http", "ws") + "/api/v1/ws",
                subprotocols=["skillwire.v1"],  # type: ignore[list-item]
                additional_headers=headers,
            ) as conn,
            httpx.AsyncClient(base_url=url, headers=headers, timeout=scaled(20)) as client,
        ):
            await conn.send(json.dumps({"op": "subscribe", "ref": "s", "task_id": task_id}))
            await conn.recv()
            async with client.stream(
                "GET", f"/api/v1/tasks/{task_id}/events", headers={"Accept": "application/x-ndjson"}
            ) as stream:
                lines = stream.aiter_lines()
                assert json.loads(await anext(lines))["seq"] == 1
                process.send_signal(signal.SIGTERM)
                async with asyncio.timeout(scaled(10)):
                    rest = [line async for line in lines]  # the stream ends, no error
                assert all(line == "" or json.loads(line) for line in rest)
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(scaled(10)):
                    while True:
                        await conn.recv()
            assert conn.close_code == 1012
        assert process.wait(scaled(20)) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_requests_during_drain_get_503(server_factory) -> None:  # type: ignore[no-untyped-def]
    """While draining, /api/v1 answers 503 SERVICE_UNAVAILABLE and /readyz 503."""
    server = server_factory()
    server.call_soon(server.runtime.begin_drain)
    with server.client() as client:
        response = client.get("/api/v1/apps")
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200


def test_memory_backbone_fails_unfinished_work_with_shutdown_code(server_factory) -> None:  # type: ignore[no-untyped-def]
    """On the memory backbone, work still running after the grace period ends with SHUTDOWN."""
    server = server_factory({"backbone": "memory", "shutdown_grace": 0.1})
    with server.client() as client:
        task_id = client.post(
            "/api/v1/apps/demo/countdown", json={"requests": [{"n": 1000, "interval": 0.05}]}
        ).json()["task_id"]
    runtime = server.runtime
    backbone = runtime.backbone
    server.stop()
    stored = asyncio.run(backbone.get_task(task_id))
    assert stored is not None
    assert stored.task.status == "failed"
    assert stored.task.requests[0].error.code == "SHUTDOWN"


def test_redis_backbone_requeues_unfinished_work(server_factory, backbone: str) -> None:  # type: ignore[no-untyped-def]
    """On redis, work still running at shutdown is requeued and another process finishes it."""
    if backbone != "redis":
        pytest.skip("requeueing needs a shared backbone")
    first = server_factory({"shutdown_grace": 0.1})
    with first.client() as client:
        task_id = client.post(
            "/api/v1/apps/demo/countdown", json={"requests": [{"n": 20, "interval": 0.05}]}
        ).json()["task_id"]
        deadline = time.monotonic() + scaled(10)
        while client.get(f"/api/v1/tasks/{task_id}").json()["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    first.stop()
    second = server_factory()
    with second.client() as client:
        task = client.get(f"/api/v1/tasks/{task_id}", params={"wait": 20}).json()
    assert task["status"] == "completed"
    assert [p["i"] for p in task["previews"]] == list(range(1, 21))


def test_sigterm_keeps_listening_for_the_drain_period_and_answers_503() -> None:
    """After SIGTERM, open and new connections get 503 (and /readyz 503) until drain_period ends."""
    process, url = _serve({"SKILLWIRE_DRAIN_PERIOD": "3", "SKILLWIRE_SHUTDOWN_GRACE": "0.2"})
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=scaled(5)) as kept_alive:
            assert kept_alive.get("/api/v1/apps").status_code == 200
            process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + scaled(2)
            while kept_alive.get("/readyz").status_code != 503:  # the signal is handled
                assert time.monotonic() < deadline, "readyz never turned 503"
                time.sleep(0.05)
            response = kept_alive.get("/api/v1/apps")
            assert response.status_code == 503
            assert response.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
            with httpx.Client(base_url=url, headers=headers, timeout=scaled(5)) as new:
                assert new.get("/readyz").status_code == 503
                assert new.get("/api/v1/apps").status_code == 503
        assert process.wait(scaled(20)) == 0
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/healthz", timeout=scaled(5))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
