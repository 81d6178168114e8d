"""Browser tickets: short-lived, single-use credentials for the WS and SSE URLs."""

from __future__ import annotations

import asyncio

from tests.channels.helpers import sse_events, start_task
from tests.conftest import USER_KEY, RunningServer


def test_ticket_opens_one_sse_stream_only(server: RunningServer) -> None:
    """A ticket authenticates one SSE request as its principal; reuse answers 401."""
    task_id = start_task(server, "echo", [{"text": "t"}], key=USER_KEY)
    with server.client(USER_KEY) as client:
        ticket = client.post("/api/v1/tickets").json()["ticket"]
    events = sse_events(server, task_id, params={"ticket": ticket}, key=None)
    assert events[-1]["type"] == "task.completed"
    with server.client(None) as client:
        response = client.get(f"/api/v1/tasks/{task_id}/events", params={"ticket": ticket})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHORIZED"


def test_expired_ticket_is_refused(server: RunningServer) -> None:
    """A ticket past its lifetime answers 401."""
    task_id = start_task(server, "echo", [{"text": "t"}], key=USER_KEY)
    future = asyncio.run_coroutine_threadsafe(
        server.runtime.backbone.put_ticket("tkt_short", "user", 0.0), server.server_loop
    )
    future.result(5)
    with server.client(None) as client:
        response = client.get(f"/api/v1/tasks/{task_id}/events", params={"ticket": "tkt_short"})
    assert response.status_code == 401


def test_ticket_requires_credentials(server: RunningServer) -> None:
    """POST /api/v1/tickets without a key answers 401."""
    with server.client(None) as client:
        assert client.post("/api/v1/tickets").status_code == 401
