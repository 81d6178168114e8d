"""Following a session: its log over SSE, NDJSON and WebSocket, with resume and snapshots."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.channels.helpers import sse_frames, ws, ws_next, ws_until
from tests.conftest import OTHER_KEY, USER_KEY, RunningServer, scaled
from tests.server.conftest import assert_error, events_of, finished

from .helpers import call_in, new_session, session_log, session_ndjson, session_sse

TASK_TERMINAL = {"task.completed", "task.partial", "task.failed", "task.cancelled"}


def _two_finished_tasks(server: RunningServer) -> tuple[str, list[str]]:
    """A session with two finished echo tasks."""
    with server.client(USER_KEY) as client:
        session_id = new_session(client, title="t")["session_id"]
        tasks = [call_in(client, session_id, "echo", [{"text": t}]).json()["task_id"] for t in "ab"]
        for task_id in tasks:
            finished(client, task_id)
    return session_id, tasks


def _close(server: RunningServer, session_id: str) -> None:
    with server.client(USER_KEY) as client:
        assert client.delete(f"/api/v1/sessions/{session_id}").status_code == 200


def test_the_log_holds_each_task_event_once_in_task_order(session_server: RunningServer) -> None:
    """session.task comes first for each task, then its events, each once and in seq order."""
    session_id, tasks = _two_finished_tasks(session_server)
    log = session_log(session_server, session_id)
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1))
    assert all(e["session_id"] == session_id for e in log)
    joined = [e["data"]["task_id"] for e in log if e["type"] == "session.task"]
    assert joined == tasks
    for task_id in tasks:
        wrapped = [
            e["data"] for e in log if e["type"] == "task.event" and e["data"]["task_id"] == task_id
        ]
        assert wrapped == events_of(session_server, task_id)
        first_event = next(
            i
            for i, e in enumerate(log)
            if e["type"] == "task.event" and e["data"]["task_id"] == task_id
        )
        join = next(
            i
            for i, e in enumerate(log)
            if e["type"] == "session.task" and e["data"]["task_id"] == task_id
        )
        assert join < first_event
        assert log[join]["data"] == {
            "task_id": task_id,
            "app": "demo",
            "skill": "echo",
            "parent_task_id": None,
        }


def test_sse_replays_then_ends_after_session_closed(session_server: RunningServer) -> None:
    """SSE of a closed session replays its whole log, session.closed last, and ends."""
    session_id, _ = _two_finished_tasks(session_server)
    _close(session_server, session_id)
    events = session_sse(session_server, session_id, key=USER_KEY)
    assert events == session_log(session_server, session_id)
    assert events[-1]["type"] == "session.closed"
    assert events[-1]["data"]["status"] == "closed"


def test_sse_resumes_with_last_event_id_and_ndjson_with_after(
    session_server: RunningServer,
) -> None:
    """Last-Event-ID (SSE) and ?after= (NDJSON) resume right after the given session seq."""
    session_id, _ = _two_finished_tasks(session_server)
    _close(session_server, session_id)
    log = session_log(session_server, session_id)
    sse = session_sse(session_server, session_id, headers={"Last-Event-ID": "3"})
    ndjson = session_ndjson(session_server, session_id, params={"after": "4"})
    assert sse == log[3:]
    assert ndjson == log[4:]


def test_a_stream_stays_open_with_heartbeats_until_the_session_closes(
    session_server: RunningServer,
) -> None:
    """A session stream outlives its finished tasks (heartbeats) and ends at session.closed."""
    session_id, _ = _two_finished_tasks(session_server)
    seen: list[dict[str, str]] = []
    closed = False
    with (
        session_server.client(USER_KEY) as client,
        client.stream("GET", f"/api/v1/sessions/{session_id}/events") as response,
    ):
        for frame in sse_frames(response):
            seen.append(frame)
            if frame.get("comment") == "heartbeat" and not closed:
                closed = True
                _close(session_server, session_id)
    types = [f["event"] for f in seen if "event" in f]
    assert types[-1] == "session.closed"
    assert types.count("session.closed") == 1


def test_live_events_of_a_new_call_reach_a_follower(session_server: RunningServer) -> None:
    """A call made while a follower is connected reaches it live, after its session.task."""
    with session_server.client(USER_KEY) as client:
        session_id = new_session(client)["session_id"]

    async def follow() -> list[dict[str, Any]]:
        async with ws(session_server, USER_KEY) as conn:
            await conn.send(json.dumps({"op": "subscribe", "ref": "s", "session_id": session_id}))
            subscribed = await ws_next(conn)
            assert subscribed == {
                "op": "subscribed",
                "ref": "s",
                "session_id": session_id,
                "status": "open",
                "last_seq": 0,
            }
            await conn.send(
                json.dumps(
                    {
                        "op": "call",
                        "ref": "c",
                        "app": "demo",
                        "skill": "echo",
                        "requests": [{"text": "hi"}],
                        "session_id": session_id,
                    }
                )
            )
            messages = await ws_until(
                conn,
                lambda m: (
                    m.get("op") == "session_event"
                    and m["event"]["type"] == "task.event"
                    and m["event"]["data"]["type"] in TASK_TERMINAL
                ),
            )
            return [m["event"] for m in messages if m.get("op") == "session_event"]

    events = asyncio.run(follow())
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "session.task"
    assert events == session_log(session_server, session_id)[: len(events)]


def test_ws_resume_after_a_seq_and_ended_past_the_close(session_server: RunningServer) -> None:
    """WS subscribe with after=N replays from N+1; at or past session.closed it gets `ended`."""
    session_id, _ = _two_finished_tasks(session_server)
    _close(session_server, session_id)
    log = session_log(session_server, session_id)
    last = log[-1]["seq"]

    async def run() -> tuple[list[dict[str, Any]], dict[str, Any]]:
        async with ws(session_server, USER_KEY) as conn:
            await conn.send(
                json.dumps({"op": "subscribe", "ref": "a", "session_id": session_id, "after": 2})
            )
            replay = await ws_until(
                conn,
                lambda m: m.get("op") == "session_event" and m["event"]["type"] == "session.closed",
            )
            await conn.send(
                json.dumps({"op": "subscribe", "ref": "b", "session_id": session_id, "after": last})
            )
            ended = (await ws_until(conn, lambda m: m.get("op") == "ended"))[-1]
            return [m["event"] for m in replay if m.get("op") == "session_event"], ended

    replay, ended = asyncio.run(run())
    assert replay == log[2:]
    assert ended == {"op": "ended", "session_id": session_id, "last_seq": last}


def test_snapshot_carries_the_session_and_its_tasks(session_server: RunningServer) -> None:
    """?snapshot=true starts with session.snapshot (the session, its tasks) at the last seq."""
    session_id, tasks = _two_finished_tasks(session_server)
    events = session_ndjson(session_server, session_id, params={"snapshot": "true"}, limit=1)
    snapshot = events[0]
    assert snapshot["type"] == "session.snapshot"
    assert snapshot["seq"] == session_log(session_server, session_id)[-1]["seq"]
    assert snapshot["data"]["session"]["session_id"] == session_id
    assert [t["task_id"] for t in snapshot["data"]["tasks"]] == tasks
    assert all(t["status"] == "completed" for t in snapshot["data"]["tasks"])


def test_a_snapshot_of_a_closed_session_is_the_last_thing_sent(
    session_server: RunningServer,
) -> None:
    """Following a closed session with a snapshot gets the snapshot alone, then the end."""
    session_id, _ = _two_finished_tasks(session_server)
    _close(session_server, session_id)
    events = session_sse(session_server, session_id, params={"snapshot": "true"})
    assert [e["type"] for e in events] == ["session.snapshot"]
    assert events[0]["data"]["session"]["status"] == "closed"


def test_a_ticket_opens_a_session_stream_once(session_server: RunningServer) -> None:
    """A browser ticket authenticates one session stream as its principal."""
    session_id, _ = _two_finished_tasks(session_server)
    _close(session_server, session_id)
    with session_server.client(USER_KEY) as client:
        ticket = client.post("/api/v1/tickets").json()["ticket"]
    events = session_sse(session_server, session_id, params={"ticket": ticket}, key="")
    assert events[-1]["type"] == "session.closed"
    with session_server.client(None) as anonymous:
        again = anonymous.get(f"/api/v1/sessions/{session_id}/events", params={"ticket": ticket})
    assert_error(again, 401, "UNAUTHORIZED")


@pytest.mark.parametrize("bad", ["-1", "x", "1.5"])
def test_a_bad_after_is_400(session_server: RunningServer, bad: str) -> None:
    """?after= must be a non-negative integer on a session stream too."""
    session_id, _ = _two_finished_tasks(session_server)
    with session_server.client(USER_KEY) as client:
        response = client.get(f"/api/v1/sessions/{session_id}/events", params={"after": bad})
    assert_error(response, 400, "BAD_REQUEST")


def test_ws_subscribe_to_another_principals_session_is_404(
    session_server: RunningServer,
) -> None:
    """WS subscribe to a session of another principal answers an op error NOT_FOUND."""
    session_id, _ = _two_finished_tasks(session_server)

    async def run() -> dict[str, Any]:
        async with ws(session_server, OTHER_KEY) as conn:
            await conn.send(json.dumps({"op": "subscribe", "ref": "x", "session_id": session_id}))
            return await ws_next(conn, timeout=scaled(5))

    reply = asyncio.run(run())
    assert reply["op"] == "error"
    assert reply["ref"] == "x"
    assert reply["error"]["code"] == "NOT_FOUND"
