"""Helpers for remote worker tests: worker keys, a raw worker WebSocket, calls over HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from tests.conftest import ADMIN_KEY, TEST_KEYS, RunningServer, scaled

WORKER_KEY = "sk_test_worker"
NARROW_WORKER_KEY = "sk_test_worker_narrow"
WORKER_KEYS: list[dict[str, Any]] = [
    *TEST_KEYS,
    {"name": "worker", "key": WORKER_KEY, "role": "worker"},
    {"name": "narrow", "key": NARROW_WORKER_KEY, "role": "worker", "scopes": ["ext"]},
]

TEXT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"text": {"type": "string"}, "n": {"type": "integer", "minimum": 0}},
    "required": ["text"],
}


def declaration(skill: str = "upper", app: str = "ext", **fields: Any) -> dict[str, Any]:
    return {"app": app, "skill": skill, "input_schema": TEXT_SCHEMA, "mode": "quick", **fields}


def worker_server(factory: Callable[..., RunningServer], **overrides: Any) -> RunningServer:
    return factory({"keys": WORKER_KEYS, "heartbeat_interval": 0.5, **overrides})


def worker_ws(server: RunningServer, key: str | None = WORKER_KEY) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return connect(
        f"{server.ws_url}/api/v1/workers/ws",
        subprotocols=["skillwire.worker.v1"],  # type: ignore[list-item]
        additional_headers=headers,
        open_timeout=scaled(10),
    )


class Inbox:
    """A worker connection's messages, one at a time (a frame may carry several lines)."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.pending: list[dict[str, Any]] = []

    async def next(self, timeout: float = 10, *, skip_heartbeats: bool = True) -> dict[str, Any]:
        while True:
            if not self.pending:
                async with asyncio.timeout(scaled(timeout)):
                    frame = await self.conn.recv()
                assert isinstance(frame, str)
                self.pending.extend(json.loads(line) for line in frame.split("\n"))
            message = self.pending.pop(0)
            if not (skip_heartbeats and message.get("op") == "heartbeat"):
                return message

    async def until(self, op: str, timeout: float = 10) -> dict[str, Any]:
        while True:
            message = await self.next(timeout)
            if message.get("op") == op:
                return message

    async def send(self, message: dict[str, Any]) -> None:
        await self.conn.send(json.dumps(message))


async def hello(inbox: Inbox, *skills: dict[str, Any], concurrency: int = 1) -> dict[str, Any]:
    await inbox.send(
        {
            "op": "hello",
            "ref": "h",
            "name": "raw",
            "concurrency": concurrency,
            "skills": list(skills),
        }
    )
    return await inbox.until("welcome")


async def call(
    server: RunningServer,
    skill: str,
    requests: list[dict[str, Any]],
    *,
    app: str = "ext",
    key: str = ADMIN_KEY,
    prefer: str = "respond-async",
) -> Any:
    async with server.async_client(key) as client:
        return await client.post(
            f"/api/v1/apps/{app}/{skill}", json={"requests": requests}, headers={"Prefer": prefer}
        )


async def task_when(
    server: RunningServer, task_id: str, done: Callable[[dict[str, Any]], bool], timeout: float = 10
) -> dict[str, Any]:
    """Poll the task until ``done(task)`` holds (under a scaled deadline)."""
    async with server.async_client() as client, asyncio.timeout(scaled(timeout)):
        while True:
            task: dict[str, Any] = (await client.get(f"/api/v1/tasks/{task_id}")).json()
            if done(task):
                return task
            await asyncio.sleep(0.02)


def finished(task: dict[str, Any]) -> bool:
    return task["status"] in {"completed", "partial", "failed", "cancelled"}


async def events_of(server: RunningServer, task_id: str) -> list[dict[str, Any]]:
    """Every event of a finished task, read from its NDJSON stream."""
    async with server.async_client() as client:
        response = await client.get(
            f"/api/v1/tasks/{task_id}/events", headers={"Accept": "application/x-ndjson"}
        )
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


def gap_free(events: list[dict[str, Any]]) -> bool:
    return [e["seq"] for e in events] == list(range(1, len(events) + 1))
