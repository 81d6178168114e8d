"""Helpers for channel tests: real WebSocket, SSE and NDJSON clients against a RunningServer."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Iterator
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from tests.conftest import ADMIN_KEY, RunningServer, scaled

TERMINAL = {"task.completed", "task.partial", "task.failed", "task.cancelled"}


def start_task(
    server: RunningServer, skill: str, requests: list[dict[str, Any]], key: str = ADMIN_KEY
) -> str:
    with server.client(key) as client:
        response = client.post(
            f"/api/v1/apps/demo/{skill}",
            json={"requests": requests},
            headers={"Prefer": "respond-async"},
        )
    assert response.status_code == 202, response.text
    task_id: str = response.json()["task_id"]
    return task_id


def ws(server: RunningServer, key: str | None = ADMIN_KEY, query: str = "", **kwargs: Any) -> Any:
    _unread.clear()
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return connect(
        f"{server.ws_url}/api/v1/ws{query}",
        subprotocols=["skillwire.v1"],  # type: ignore[list-item]
        additional_headers=headers,
        open_timeout=scaled(10),
        **kwargs,
    )


_unread: dict[int, deque[dict[str, Any]]] = {}


async def ws_next(conn: ClientConnection, timeout: float = 10) -> dict[str, Any]:
    """The next message (a server frame may carry several, one per line)."""
    pending = _unread.setdefault(id(conn), deque())
    if not pending:
        async with asyncio.timeout(scaled(timeout)):
            frame = await conn.recv()
        assert isinstance(frame, str)
        pending.extend(json.loads(line) for line in frame.split("\n"))
    return pending.popleft()


async def ws_messages(conn: ClientConnection, timeout: float = 10) -> list[dict[str, Any]]:
    """The next message, as a one-item list (kept for readability at call sites)."""
    return [await ws_next(conn, timeout)]


async def ws_until(
    conn: ClientConnection, predicate: Any, timeout: float = 10
) -> list[dict[str, Any]]:
    """Every message up to and including the first for which ``predicate`` holds."""
    seen: list[dict[str, Any]] = []
    while True:
        message = await ws_next(conn, timeout)
        seen.append(message)
        if predicate(message):
            return seen


async def ws_events_until_terminal(conn: ClientConnection, task_id: str) -> list[dict[str, Any]]:
    messages = await ws_until(
        conn,
        lambda m: (
            m.get("op") == "event"
            and m["event"]["task_id"] == task_id
            and m["event"]["type"] in TERMINAL
        ),
        timeout=30,
    )
    return [
        m["event"] for m in messages if m.get("op") == "event" and m["event"]["task_id"] == task_id
    ]


def sse_frames(response: httpx.Response) -> Iterator[dict[str, str]]:
    """Parse raw SSE frames (comments included, as {"comment": ...})."""
    frame: dict[str, str] = {}
    for line in response.iter_lines():
        if line == "":
            if frame:
                yield frame
            frame = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            name, _, value = line.partition(":")
            frame[name] = value[1:] if value.startswith(" ") else value
    if frame:
        yield frame


def sse_events(
    server: RunningServer,
    task_id: str,
    *,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    key: str | None = ADMIN_KEY,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Events from an SSE stream until it ends (or ``limit`` events were read)."""
    events: list[dict[str, Any]] = []
    with (
        server.client(key) as client,
        client.stream(
            "GET", f"/api/v1/tasks/{task_id}/events", headers=headers or {}, params=params or {}
        ) as response,
    ):
        assert response.status_code == 200, response.read()
        for frame in sse_frames(response):
            if "data" in frame:
                event = json.loads(frame["data"])
                assert frame["id"] == str(event["seq"])
                assert frame["event"] == event["type"]
                events.append(event)
                if limit is not None and len(events) >= limit:
                    break
    return events


def ndjson_events(
    server: RunningServer,
    task_id: str,
    *,
    params: dict[str, str] | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    with (
        server.client() as client,
        client.stream(
            "GET",
            f"/api/v1/tasks/{task_id}/events",
            headers={"Accept": "application/x-ndjson"},
            params=params or {},
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-ndjson"
        for line in response.iter_lines():
            if line:
                events.append(json.loads(line))
                if limit is not None and len(events) >= limit:
                    break
    return events


def seqs(events: list[dict[str, Any]]) -> list[int]:
    return [e["seq"] for e in events]
