"""Helpers for the session tests: create sessions, call skills in them, read their logs."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.conftest import ADMIN_KEY, RunningServer
from tests.server.conftest import run_on_server

__all__ = ["call_in", "new_session", "session_log", "session_ndjson", "session_sse"]


def new_session(client: httpx.Client, **body: Any) -> dict[str, Any]:
    response = client.post("/api/v1/sessions", json=body)
    assert response.status_code == 201, response.text
    session: dict[str, Any] = response.json()
    return session


def call_in(
    client: httpx.Client,
    session_id: str,
    skill: str,
    requests: list[dict[str, Any]],
    **headers: str,
) -> httpx.Response:
    return client.post(
        f"/api/v1/apps/demo/{skill}",
        json={"requests": requests, "session_id": session_id},
        headers={"Prefer": "respond-async", **headers},
    )


def session_log(server: RunningServer, session_id: str) -> list[dict[str, Any]]:
    """Every stored event of a session's log, decoded."""
    log = run_on_server(
        server, server.runtime.backbone.read_session_events(session_id, 0, 1_000_000)
    )
    assert log is not None, f"session {session_id} is not stored"
    return [json.loads(event.json) for event in log.events]


def session_sse(
    server: RunningServer,
    session_id: str,
    *,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    key: str = ADMIN_KEY,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Session events read over SSE until the stream ends (or ``limit`` were read)."""
    from tests.channels.helpers import sse_frames

    events: list[dict[str, Any]] = []
    with (
        server.client(key) as client,
        client.stream(
            "GET",
            f"/api/v1/sessions/{session_id}/events",
            params=params or {},
            headers=headers or {},
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


def session_ndjson(
    server: RunningServer,
    session_id: str,
    *,
    params: dict[str, str] | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    with (
        server.client() as client,
        client.stream(
            "GET",
            f"/api/v1/sessions/{session_id}/events",
            params=params or {},
            headers={"Accept": "application/x-ndjson"},
        ) as response,
    ):
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line:
                events.append(json.loads(line))
                if limit is not None and len(events) >= limit:
                    break
    return events
