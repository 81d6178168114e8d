"""Presence: GET /api/v1/workers (admin) and the workers' metrics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from tests.conftest import USER_KEY, RunningServer, scaled

from .helpers import Inbox, call, declaration, hello, worker_server, worker_ws

Factory = Callable[..., RunningServer]


async def workers_of(server: RunningServer, key: str | None = None) -> Any:
    async with server.async_client(*(key,) if key else ()) as client:
        return await client.get("/api/v1/workers")


async def test_connected_workers_are_listed_for_admins(server_factory: Factory) -> None:
    """A connected worker shows its id, name, key, skills and in-flight work; users get 403."""
    server = worker_server(server_factory)
    async with worker_ws(server) as conn:
        inbox = Inbox(conn)
        welcome = await hello(inbox, declaration(), declaration("lower"))
        await call(server, "upper", [{"text": "a"}])
        work = await inbox.until("work")
        (listed,) = (await workers_of(server)).json()["items"]
        assert listed["worker_id"] == welcome["worker_id"]
        assert (listed["name"], listed["principal"]) == ("raw", "worker")
        assert listed["skills"] == ["ext/upper", "ext/lower"]
        assert listed["in_flight"] == 1
        assert listed["connected_at"].endswith("Z") and listed["last_seen"].endswith("Z")
        assert (await workers_of(server, USER_KEY)).status_code == 403
        await inbox.send({"op": "completed", "work_id": work["work_id"]})
    async with asyncio.timeout(scaled(5)):
        while (await workers_of(server)).json()["items"]:
            await asyncio.sleep(0.02)


async def test_metrics_count_workers_and_their_work(server_factory: Factory) -> None:
    """/metrics shows skillwire_workers_connected and in-flight remote work per skill."""
    server = worker_server(server_factory)
    async with worker_ws(server) as conn:
        inbox = Inbox(conn)
        await hello(inbox, declaration())
        await call(server, "upper", [{"text": "a"}])
        await inbox.until("work")
        async with server.async_client() as client:
            text = (await client.get("/metrics")).text
    assert "skillwire_workers_connected 1.0" in text
    assert 'skillwire_remote_in_flight{app="ext",skill="upper"} 1.0' in text


async def test_connect_hello_and_disconnect_are_audited(
    server_factory: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    """Audit lines name the worker key for its connect, hello (with skills) and disconnect."""
    caplog.set_level(logging.INFO, logger="skillwire.audit")
    server = worker_server(server_factory)
    async with worker_ws(server) as conn:
        welcome = await hello(Inbox(conn), declaration())

    def audited() -> list[dict[str, Any]]:
        return [r.fields for r in caplog.records if r.name == "skillwire.audit"]  # type: ignore[attr-defined]

    async with asyncio.timeout(scaled(5)):
        while not any(f["audit"] == "worker.disconnect" for f in audited()):
            await asyncio.sleep(0.02)
    lines = {f["audit"]: f for f in audited()}
    assert lines["worker.connect"]["principal"] == "worker"
    assert lines["worker.hello"]["skills"] == ["ext/upper"]
    assert lines["worker.hello"]["worker_id"] == welcome["worker_id"]
    assert lines["worker.disconnect"]["worker_id"] == welcome["worker_id"]


async def test_asyncapi_describes_the_workers_channel(server_factory: Factory) -> None:
    """/asyncapi.json has the workers' channel, with hello, work and the worker messages."""
    server = worker_server(server_factory)
    async with server.async_client() as client:
        document = (await client.get("/asyncapi.json")).json()
    channel = document["channels"]["workers"]
    assert channel["address"] == "/api/v1/workers/ws"
    names = {m["name"] for m in channel["messages"].values()}
    assert {"hello", "welcome", "work", "cancel", "progress", "output", "delta"} <= names
    assert {"completed", "failed", "error", "heartbeat"} <= names
    assert "WorkerHello" in document["components"]["schemas"]


async def test_worker_connections_count_against_the_client_rate_limit(
    server_factory: Factory,
) -> None:
    """Past its key's limit, a worker's upgrade is accepted and closed with 1013."""
    server = worker_server(server_factory, rate_limit="2/minute")
    for _ in range(2):
        async with worker_ws(server) as conn:
            await hello(Inbox(conn), declaration())
    async with worker_ws(server) as conn:
        with pytest.raises(ConnectionClosed):
            await Inbox(conn).next()
        assert (conn.close_code, conn.close_reason) == (1013, "rate limited")
