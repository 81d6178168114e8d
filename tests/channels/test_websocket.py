"""The WebSocket channel (/api/v1/ws, skillwire.v1) against a real server."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from tests.channels.helpers import (
    TERMINAL,
    seqs,
    start_task,
    ws,
    ws_events_until_terminal,
    ws_messages,
    ws_until,
)
from tests.conftest import (
    ADMIN_KEY,
    OTHER_KEY,
    READER_KEY,
    USER_KEY,
    RunningServer,
    eventually,
    scaled,
)


async def _close_code(conn) -> int:  # type: ignore[no-untyped-def]
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(scaled(15)):
            while True:
                await conn.recv()
    return conn.close_code  # type: ignore[no-any-return]


async def test_call_op_is_accepted_then_streams_to_terminal(server: RunningServer) -> None:
    """`call` answers `accepted` with the task id, then that task's events until the terminal one."""
    async with ws(server) as conn:
        assert conn.subprotocol == "skillwire.v1"
        await conn.send(
            json.dumps(
                {
                    "op": "call",
                    "ref": "r1",
                    "app": "demo",
                    "skill": "countdown",
                    "requests": [{"n": 3, "interval": 0.01}],
                }
            )
        )
        first = (await ws_messages(conn))[0]
        assert first["op"] == "accepted" and first["ref"] == "r1"
        events = await ws_events_until_terminal(conn, first["task_id"])
    assert seqs(events) == list(range(1, 12))


async def test_subscribe_replays_after_then_live(server: RunningServer) -> None:
    """`subscribe` with after answers `subscribed`, replays seq > after, then live events."""
    task_id = start_task(server, "countdown", [{"n": 5, "interval": 0.05}])
    async with ws(server) as conn:
        await conn.send(json.dumps({"op": "subscribe", "ref": "s", "task_id": task_id, "after": 2}))
        reply = (await ws_messages(conn))[0]
        assert reply["op"] == "subscribed" and reply["ref"] == "s" and reply["task_id"] == task_id
        assert reply["status"] in ("queued", "running") and reply["last_seq"] >= 1
        events = await ws_events_until_terminal(conn, task_id)
    assert seqs(events) == list(range(3, 3 + len(events)))
    assert events[-1]["data"]["last_seq"] == events[-1]["seq"]


async def test_auth_by_first_message_and_ticket(server: RunningServer) -> None:
    """Without a header, the `auth` op or a ?ticket= authenticates; ping works before auth."""
    async with ws(server, key=None) as conn:
        await conn.send(json.dumps({"op": "ping", "ref": "p"}))
        assert (await ws_messages(conn))[0] == {"op": "pong", "ref": "p"}
        await conn.send(json.dumps({"op": "auth", "ref": "a", "token": USER_KEY}))
        assert (await ws_messages(conn))[0] == {
            "op": "authenticated",
            "ref": "a",
            "principal": "user",
        }
    with server.client(USER_KEY) as client:
        ticket = client.post("/api/v1/tickets").json()
    assert ticket["expires_in"] == 30
    async with ws(server, key=None, query=f"?ticket={ticket['ticket']}") as conn:
        await conn.send(json.dumps({"op": "ping", "ref": "p"}))
        assert (await ws_messages(conn))[0]["op"] == "pong"
    async with ws(server, key=None, query=f"?ticket={ticket['ticket']}") as conn:
        assert await _close_code(conn) == 4401  # single use


async def test_auth_failures_close_4401(server_factory) -> None:  # type: ignore[no-untyped-def]
    """A bad header key, a bad token, an op before auth, or no auth in time close with 4401."""
    server = server_factory({"ws_auth_timeout": 0.3})
    async with ws(server, key="wrong") as conn:
        assert await _close_code(conn) == 4401
    async with ws(server, key=None, query="?ticket=tkt_bogus") as conn:
        assert await _close_code(conn) == 4401
    async with ws(server, key=None) as conn:
        await conn.send(json.dumps({"op": "auth", "token": "wrong"}))
        assert await _close_code(conn) == 4401
    async with ws(server, key=None) as conn:
        await conn.send(json.dumps({"op": "subscribe", "task_id": "tsk_x"}))
        assert await _close_code(conn) == 4401
    async with ws(server, key=None) as conn:
        assert await _close_code(conn) == 4401  # silent past the auth timeout


async def test_bad_frames_get_op_errors_and_the_connection_stays_open(
    server: RunningServer,
) -> None:
    """Non-JSON, binary, unknown ops, missing or wrong-typed fields give `error` ops; the socket lives on."""
    async with ws(server) as conn:
        cases = [
            ("not json", None, "BAD_REQUEST"),
            (json.dumps([1, 2]), None, "BAD_REQUEST"),
            (json.dumps({"op": "fly", "ref": "u"}), "u", "BAD_REQUEST"),
            (json.dumps({"op": "subscribe", "ref": "m"}), "m", "VALIDATION_ERROR"),
            (
                json.dumps({"op": "subscribe", "ref": "t", "task_id": "tsk_x", "after": "x"}),
                "t",
                "VALIDATION_ERROR",
            ),
            (
                json.dumps({"op": "subscribe", "ref": "n", "task_id": "tsk_x", "after": -1}),
                "n",
                "VALIDATION_ERROR",
            ),
            (
                json.dumps(
                    {
                        "op": "call",
                        "ref": "c",
                        "app": "demo",
                        "skill": "echo",
                        "requests": [{"text": 5}],
                    }
                ),
                "c",
                "VALIDATION_ERROR",
            ),
            (
                json.dumps(
                    {"op": "call", "ref": "k", "app": "demo", "skill": "nope", "requests": [{}]}
                ),
                "k",
                "NOT_FOUND",
            ),
        ]
        for frame, ref, code in cases:
            await conn.send(frame)
            reply = (await ws_messages(conn))[0]
            assert reply["op"] == "error", frame
            assert reply.get("ref") == ref, frame
            assert reply["error"]["code"] == code, (frame, reply)
        await conn.send(b"\x00\x01binary")
        assert (await ws_messages(conn))[0]["error"]["code"] == "BAD_REQUEST"
        await conn.send(
            json.dumps({"op": "subscribe", "ref": "t", "task_id": "tsk_x", "after": "x"})
        )
        reply = (await ws_messages(conn))[0]
        assert reply["error"]["details"]["field"] == "after"
        await conn.send(json.dumps({"op": "ping", "ref": "alive"}))
        assert (await ws_messages(conn))[0] == {"op": "pong", "ref": "alive"}


async def test_unknown_and_foreign_task_subscribe_is_not_found(server: RunningServer) -> None:
    """Subscribing to an unknown task or another principal's task gives NOT_FOUND."""
    task_id = start_task(server, "echo", [{"text": "mine"}], key=USER_KEY)
    async with ws(server, key=OTHER_KEY) as conn:
        for target in ("tsk_unknown", task_id):
            await conn.send(json.dumps({"op": "subscribe", "ref": "s", "task_id": target}))
            reply = (await ws_messages(conn))[0]
            assert reply["op"] == "error" and reply["error"]["code"] == "NOT_FOUND"


async def test_forbidden_op_keeps_connection_open(server: RunningServer) -> None:
    """An op the role may not perform answers FORBIDDEN and the connection stays open."""
    async with ws(server, key=READER_KEY) as conn:
        await conn.send(
            json.dumps(
                {
                    "op": "call",
                    "ref": "c",
                    "app": "demo",
                    "skill": "echo",
                    "requests": [{"text": "x"}],
                }
            )
        )
        reply = (await ws_messages(conn))[0]
        assert reply["error"]["code"] == "FORBIDDEN" and reply["ref"] == "c"
        await conn.send(json.dumps({"op": "ping", "ref": "p"}))
        assert (await ws_messages(conn))[0]["op"] == "pong"


async def test_call_op_with_another_version_is_unsupported_and_creates_no_task(
    server: RunningServer,
) -> None:
    """A `call` op whose `version` is not "1" gets an UNSUPPORTED_VERSION op error, as over HTTP."""
    call = {"op": "call", "app": "demo", "skill": "echo", "requests": [{"text": "x"}]}
    async with ws(server) as conn:
        await conn.send(json.dumps({**call, "ref": "v2", "version": "2"}))
        reply = (await ws_until(conn, lambda m: m.get("ref") == "v2"))[-1]
        assert reply["op"] == "error" and reply["error"]["code"] == "UNSUPPORTED_VERSION"
        assert reply["error"]["details"]["field"] == "version"
        await conn.send(json.dumps({**call, "ref": "v1", "version": "1"}))
        assert (await ws_until(conn, lambda m: m.get("ref") == "v1"))[-1]["op"] == "accepted"
    with server.client() as client:
        assert client.get("/api/v1/tasks").json()["total"] == 1


async def test_upgrade_answer_carries_the_request_id(server: RunningServer) -> None:
    """The 101 answer to the upgrade carries X-Request-ID: the client's own, else a new one."""
    async with connect(
        f"{server.ws_url}/api/v1/ws",
        subprotocols=[Subprotocol("skillwire.v1")],
        additional_headers={"Authorization": f"Bearer {ADMIN_KEY}", "X-Request-ID": "upgrade-1"},
    ) as conn:
        assert conn.response is not None
        assert conn.response.headers["X-Request-ID"] == "upgrade-1"
    async with ws(server) as conn:
        assert conn.response.headers["X-Request-ID"].startswith("req_")


async def test_frame_over_the_limit_closes_1009(server_factory) -> None:  # type: ignore[no-untyped-def]
    """A frame over the configured size closes the connection with 1009."""
    server = server_factory({"ws_max_message": 1024})
    async with ws(server) as conn:
        await conn.send(json.dumps({"op": "ping", "ref": "x" * 4000}))
        assert await _close_code(conn) == 1009


async def test_many_tasks_on_one_socket_and_many_sockets_on_one_task(server: RunningServer) -> None:
    """One socket follows several tasks; several sockets follow one task; all see full sequences."""
    tasks = [start_task(server, "countdown", [{"n": 4, "interval": 0.02}]) for _ in range(3)]
    async with ws(server) as one, ws(server) as two, ws(server) as three:
        for i, task_id in enumerate(tasks):
            await one.send(json.dumps({"op": "subscribe", "ref": f"s{i}", "task_id": task_id}))
        for conn in (two, three):
            await conn.send(json.dumps({"op": "subscribe", "ref": "s", "task_id": tasks[0]}))
        seen: dict[str, list[int]] = {t: [] for t in tasks}
        done: set[str] = set()
        while len(done) < 3:
            for message in await ws_messages(one):
                if message["op"] == "event":
                    event = message["event"]
                    seen[event["task_id"]].append(event["seq"])
                    if event["type"] in TERMINAL:
                        done.add(event["task_id"])
        for task_id in tasks:
            assert seen[task_id] == list(range(1, len(seen[task_id]) + 1))
        for conn in (two, three):
            assert seqs(await ws_events_until_terminal(conn, tasks[0])) == seen[tasks[0]]


async def test_heartbeat_when_idle(heartbeat_server: RunningServer) -> None:
    """{"op": "heartbeat"} arrives when nothing else was sent for one interval."""
    async with ws(heartbeat_server) as conn:
        messages = await ws_until(conn, lambda m: m["op"] == "heartbeat", timeout=5)
    assert "time" in messages[-1]


async def test_heartbeats_are_not_counted_as_delivered_messages(
    heartbeat_server: RunningServer,
) -> None:
    """skillwire_events_delivered_total{channel="ws"} counts events and replies, not heartbeats."""
    server = heartbeat_server

    def delivered() -> float:
        with server.client() as client:
            text = client.get("/metrics").text
        line = next(
            (
                x
                for x in text.splitlines()
                if x.startswith("skillwire_events_delivered_total{") and 'channel="ws"' in x
            ),
            None,
        )
        return float(line.rsplit(" ", 1)[1]) if line else 0.0

    before = delivered()
    async with ws(server) as conn:
        for _ in range(2):
            await ws_until(conn, lambda m: m["op"] == "heartbeat", timeout=5)
        await conn.send(json.dumps({"op": "ping", "ref": "p"}))
        await ws_until(conn, lambda m: m["op"] == "pong", timeout=5)
    # The session flushes its tally as it closes: once, so the first change is the whole of it.
    await eventually(lambda: delivered() != before)
    assert delivered() - before == 1  # the pong; two heartbeats not counted


async def test_cancel_and_unsubscribe_ops(server: RunningServer) -> None:
    """`cancel` answers ok and the stream ends with task.cancelled; `unsubscribe` answers ok."""
    task_id = start_task(server, "countdown", [{"n": 1000, "interval": 0.02}])
    async with ws(server) as conn:
        await conn.send(json.dumps({"op": "subscribe", "ref": "s", "task_id": task_id}))
        await ws_until(
            conn, lambda m: m["op"] == "event" and m["event"]["type"] == "request.output"
        )
        await conn.send(json.dumps({"op": "cancel", "ref": "c", "task_id": task_id}))
        messages = await ws_until(
            conn, lambda m: m["op"] == "event" and m["event"]["type"] in TERMINAL
        )
        assert messages[-1]["event"]["type"] == "task.cancelled"
        if {"op": "ok", "ref": "c"} not in messages:  # the reply may follow the event it caused
            assert (await ws_messages(conn))[0] == {"op": "ok", "ref": "c"}
        await conn.send(json.dumps({"op": "cancel", "ref": "again", "task_id": task_id}))
        assert (await ws_messages(conn))[0]["error"]["code"] == "CONFLICT"
        other = start_task(server, "countdown", [{"n": 1000, "interval": 0.05}])
        await conn.send(json.dumps({"op": "subscribe", "ref": "s2", "task_id": other}))
        await ws_until(conn, lambda m: m["op"] == "event")
        await conn.send(json.dumps({"op": "unsubscribe", "ref": "u", "task_id": other}))
        await ws_until(conn, lambda m: m.get("ref") == "u")
        await conn.send(json.dumps({"op": "ping", "ref": "p"}))
        after = await ws_until(conn, lambda m: m.get("ref") == "p")
        # at most events already queued before the unsubscribe arrived may precede the pong
        assert all(m["op"] in ("event", "pong") for m in after)
    with server.client(ADMIN_KEY) as client:
        client.delete(f"/api/v1/tasks/{other}")


async def test_subscribe_past_the_end_of_a_finished_task_says_so(server: RunningServer) -> None:
    """`subscribed` carries status and last_seq: a client resuming after the end knows it is done."""
    task_id = start_task(server, "echo", [{"text": "done"}])
    with server.client() as client:
        last = client.get(f"/api/v1/tasks/{task_id}", params={"wait": 5}).json()["last_seq"]
    async with ws(server) as conn:
        await conn.send(
            json.dumps({"op": "subscribe", "ref": "s", "task_id": task_id, "after": last})
        )
        reply = (await ws_messages(conn))[0]
        ended = (await ws_messages(conn))[0]
    assert reply == {
        "op": "subscribed",
        "ref": "s",
        "task_id": task_id,
        "status": "completed",
        "last_seq": last,
    }
    assert ended == {"op": "ended", "task_id": task_id, "last_seq": last}


@pytest.mark.parametrize("after", [1000, 2**64])
async def test_subscription_past_the_end_of_a_running_task_gets_ended(
    server: RunningServer, after: int
) -> None:
    """A subscription with after beyond a running task's last seq gets `ended` when it finishes
    (however large after is: never a backbone error)."""
    task_id = start_task(server, "countdown", [{"n": 4, "interval": 0.2}])
    async with ws(server) as conn:
        await conn.send(
            json.dumps({"op": "subscribe", "ref": "s", "task_id": task_id, "after": after})
        )
        messages = await ws_until(conn, lambda m: m["op"] in ("ended", "event"), timeout=10)
        assert messages[0]["op"] == "subscribed" and messages[0]["status"] != "completed"
        await conn.send(json.dumps({"op": "ping", "ref": "p"}))  # the connection stays usable
        assert (await ws_until(conn, lambda m: m["op"] == "pong"))[-1]["ref"] == "p"
    with server.client() as client:
        task = client.get(f"/api/v1/tasks/{task_id}").json()
    assert task["status"] == "completed"
    assert messages[-1] == {"op": "ended", "task_id": task_id, "last_seq": task["last_seq"]}
