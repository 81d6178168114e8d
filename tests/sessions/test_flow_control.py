"""A session follower too slow to keep up is cut (1013) and resumes without loss."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.channels.test_flow_control import _raw_ws_call_then_stall, bulk
from tests.conftest import ADMIN_KEY, RunningServer
from tests.server.conftest import finished

from .helpers import new_session, session_sse


async def test_a_session_follower_that_stops_reading_is_cut_and_resumes(
    server_factory: Any,
) -> None:
    """A WS session follower that stops reading while a task floods the session is closed
    with 1013; resuming after the last session seq it saw gets the rest exactly once."""
    server: RunningServer = server_factory({"send_queue": 32}, apps=[bulk])
    with server.client(ADMIN_KEY) as client:
        session_id = new_session(client)["session_id"]

    def flood() -> str:
        # 2,000 outputs of 4 KB: far past the socket's buffer and the send queue, and well
        # under the memory log's byte limit, so the resume reads the log, not a snapshot.
        with server.client(ADMIN_KEY) as client:
            response = client.post(
                "/api/v1/apps/bulk/blob",
                json={"requests": [{"n": 2000, "size": 4000}], "session_id": session_id},
                headers={"Prefer": "respond-async"},
            )
        assert response.status_code == 202, response.text
        return response.json()["task_id"]  # type: ignore[no-any-return]

    subscribe = {"op": "subscribe", "ref": "s", "session_id": session_id, "after": 0}
    stalled = asyncio.create_task(_raw_ws_call_then_stall(server, subscribe))
    await asyncio.sleep(0.3)  # subscribed (the reply waits unread), then the flood starts
    task_id = await asyncio.to_thread(flood)
    messages, close_code = await stalled
    assert close_code == 1013
    got = [m["event"] for m in messages if m.get("op") == "session_event"]
    assert got, "some session events were delivered before the cut"
    assert [e["seq"] for e in got] == list(range(1, len(got) + 1))

    def finish_and_close() -> None:
        with server.client(ADMIN_KEY) as client:
            finished(client, task_id, wait=60)
            assert client.delete(f"/api/v1/sessions/{session_id}").status_code == 200

    await asyncio.to_thread(finish_and_close)
    rest = await asyncio.to_thread(
        session_sse, server, session_id, params={"after": str(got[-1]["seq"])}
    )
    seen = got + rest
    assert [e["seq"] for e in seen] == list(range(1, len(seen) + 1))
    assert seen[-1]["type"] == "session.closed"
    outputs = [
        e for e in seen if e["type"] == "task.event" and e["data"]["type"] == "request.output"
    ]
    assert len(outputs) == 2000
    assert [e["data"]["data"]["i"] for e in outputs] == list(range(2000))
