"""Read part of a long task on one channel, drop, resume on another: every event exactly once."""

from __future__ import annotations

import json

from tests.channels.helpers import (
    ndjson_events,
    seqs,
    sse_events,
    start_task,
    ws,
    ws_events_until_terminal,
    ws_messages,
)
from tests.conftest import RunningServer


async def test_cross_channel_resume_of_a_1000_event_task(server: RunningServer) -> None:
    """WS, then SSE with Last-Event-ID, then NDJSON with ?after=, then WS subscribe after: no loss, no dup."""
    task_id = start_task(server, "countdown", [{"n": 600, "interval": 0.001}])
    received: list[dict] = []  # type: ignore[type-arg]
    async with ws(server) as conn:
        await conn.send(json.dumps({"op": "subscribe", "ref": "s", "task_id": task_id, "after": 0}))
        while len(received) < 150:
            received.extend(m["event"] for m in await ws_messages(conn) if m["op"] == "event")
    received.extend(
        sse_events(server, task_id, headers={"Last-Event-ID": str(received[-1]["seq"])}, limit=300)
    )
    received.extend(
        ndjson_events(server, task_id, params={"after": str(received[-1]["seq"])}, limit=300)
    )
    async with ws(server) as conn:
        await conn.send(
            json.dumps(
                {"op": "subscribe", "ref": "s", "task_id": task_id, "after": received[-1]["seq"]}
            )
        )
        received.extend(await ws_events_until_terminal(conn, task_id))
    assert seqs(received) == list(range(1, len(received) + 1))
    assert received[-1]["type"] == "task.completed"
    assert len(received) == 2 * 600 + 5
    outputs = [e["data"]["i"] for e in received if e["type"] == "request.output"]
    assert outputs == list(range(1, 601))
