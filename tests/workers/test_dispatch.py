"""Remote workers over a real gateway: listing, validation, dispatch, events, cancel, leases."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

from tests.channels.helpers import ws, ws_until
from tests.conftest import RunningServer, scaled

from .helpers import (
    WORKER_KEY,
    Inbox,
    call,
    declaration,
    events_of,
    finished,
    gap_free,
    hello,
    task_when,
    worker_server,
    worker_ws,
)

Factory = Callable[..., RunningServer]


async def test_remote_skills_are_listed_with_remote_true(server_factory: Factory) -> None:
    """A declared skill shows in GET /api/v1/apps and /apps/{app}/{skill} with remote: true."""
    server = worker_server(server_factory)
    async with worker_ws(server) as conn:
        await hello(Inbox(conn), declaration(description="Upper-case"))
        async with server.async_client() as client:
            listing = (await client.get("/api/v1/apps")).json()
            one = (await client.get("/api/v1/apps/ext/upper")).json()
    (ext,) = [item for item in listing["items"] if item["app"] == "ext"]
    assert [s["skill"] for s in ext["skills"]] == ["upper"]
    assert one["remote"] is True and one["description"] == "Upper-case"
    demo = next(item for item in listing["items"] if item["app"] == "demo")
    assert all("remote" not in s for s in demo["skills"])


async def test_calls_are_validated_against_the_declared_schema(server_factory: Factory) -> None:
    """A request outside the declared schema is a 422 naming it; no work is sent."""
    server = worker_server(server_factory)
    async with worker_ws(server) as conn:
        inbox = Inbox(conn)
        await hello(inbox, declaration())
        response = await call(server, "upper", [{"text": "ok"}, {"text": "x", "n": -1}])
        assert response.status_code == 422
        error = response.json()["error"]
        assert error["details"]["field"] == "requests[1].n"
        assert "minimum" in error["details"]["constraint"]
        missing = await call(server, "upper", [{"n": 1}])
        assert missing.status_code == 422
        async with server.async_client() as client:
            assert (await client.get("/api/v1/tasks")).json()["total"] == 0


async def test_a_worker_key_cannot_call_or_read(server_factory: Factory) -> None:
    """The worker role has only `work`: calls and reads answer 403."""
    server = worker_server(server_factory)
    async with server.async_client(WORKER_KEY) as client:
        assert (
            await client.post("/api/v1/apps/demo/echo", json={"requests": []})
        ).status_code == 403
        assert (await client.get("/api/v1/tasks")).status_code == 403


async def test_work_never_exceeds_the_workers_concurrency(server_factory: Factory) -> None:
    """Five requests on a worker of concurrency 2: at most two unfinished at once, all done."""
    server = worker_server(server_factory)
    async with worker_ws(server) as conn:
        inbox = Inbox(conn)
        await hello(inbox, declaration(), concurrency=2)
        response = await call(server, "upper", [{"text": str(i)} for i in range(5)])
        held: list[dict[str, object]] = []
        most = done = 0
        while done < 5:
            held.append(await inbox.until("work"))
            most = max(most, len(held))
            if len(held) == 2 or done + len(held) == 5:
                work = held.pop(0)
                await inbox.send({"op": "output", "work_id": work["work_id"], "output": 1})
                await inbox.send({"op": "completed", "work_id": work["work_id"]})
                done += 1
                while held and done + len(held) == 5:
                    work = held.pop(0)
                    await inbox.send({"op": "completed", "work_id": work["work_id"]})
                    done += 1
        task = await task_when(server, response.json()["task_id"], finished)
    assert task["status"] == "completed"
    assert most == 2


async def test_worker_messages_become_the_tasks_events(server_factory: Factory) -> None:
    """progress, output, delta, completed (data kept as result) and failed (error unchanged)."""
    server = worker_server(server_factory)
    async with worker_ws(server) as conn:
        inbox = Inbox(conn)
        await hello(inbox, declaration(), concurrency=2)
        response = await call(server, "upper", [{"text": "a"}, {"text": "b"}])
        works = {w["index"]: w for w in [await inbox.until("work"), await inbox.until("work")]}
        first, second = works[0]["work_id"], works[1]["work_id"]
        for message in [
            {"op": "progress", "work_id": first, "progress": 0.5, "message": "half"},
            {"op": "output", "work_id": first, "output": {"type": "text", "text": ""}},
            {"op": "delta", "work_id": first, "output": 0, "field": "text", "append": "A"},
            {"op": "delta", "work_id": first, "output": 0, "field": "text", "append": "!"},
            {"op": "completed", "work_id": first, "data": {"usage": {"total_tokens": 3}}},
            {
                "op": "failed",
                "work_id": second,
                "error": {"code": "NOPE", "message": "no b", "details": {"why": 1}},
            },
        ]:
            await inbox.send(message)
        task_id = response.json()["task_id"]
        task = await task_when(server, task_id, finished)
    assert task["status"] == "partial"
    assert task["requests"][0]["output"] == [{"type": "text", "text": "A!"}]
    assert task["requests"][0]["result"] == {"usage": {"total_tokens": 3}}
    assert task["requests"][1]["error"] == {
        "code": "NOPE",
        "message": "no b",
        "details": {"why": 1},
    }
    events = await events_of(server, task_id)
    assert gap_free(events)
    progress = next(e for e in events if e["type"] == "request.progress")
    assert progress["data"] == {"progress": 0.5, "message": "half"}


async def test_a_remote_skill_is_called_by_the_websocket_call_op(server_factory: Factory) -> None:
    """The client WebSocket's call op finds a declared skill: accepted, and its work reaches
    the worker (the op checks the skill through TaskService, as POST does)."""
    server = worker_server(server_factory)
    async with worker_ws(server) as conn:
        inbox = Inbox(conn)
        await hello(inbox, declaration())
        async with ws(server) as client:
            op = {"op": "call", "ref": "c1", "app": "ext", "skill": "upper"}
            await client.send(json.dumps({**op, "requests": [{"text": "a"}]}))
            (*_, accepted) = await ws_until(client, lambda m: m.get("ref") == "c1")
            assert accepted["op"] == "accepted", accepted
            work = await inbox.until("work")
    assert work["input"] == {"text": "a"}


async def test_cancel_reaches_the_worker_within_a_second(server_factory: Factory) -> None:
    """DELETE on the task sends cancel for its work to the worker in under 1 s."""
    server = worker_server(server_factory)
    async with worker_ws(server) as conn:
        inbox = Inbox(conn)
        await hello(inbox, declaration())
        response = await call(server, "upper", [{"text": "a"}])
        work = await inbox.until("work")
        async with server.async_client() as client:
            cancelled = await client.delete(f"/api/v1/tasks/{response.json()['task_id']}")
        assert cancelled.status_code == 200
        loop = asyncio.get_running_loop()
        started = loop.time()
        cancel = await inbox.until("cancel", timeout=scaled(1.0))
        assert cancel == {"op": "cancel", "work_id": work["work_id"]}
        assert loop.time() - started < scaled(1.0)


async def test_a_disconnected_workers_work_runs_again_elsewhere(server_factory: Factory) -> None:
    """The worker holding the work disconnects: another gets it (attempt 2); no gap."""
    server = worker_server(server_factory)
    async with worker_ws(server) as conn_b:
        inbox_b = Inbox(conn_b)
        async with worker_ws(server) as conn_a:
            inbox_a = Inbox(conn_a)
            await hello(inbox_a, declaration())
            response = await call(server, "upper", [{"text": "a"}])
            work = await inbox_a.until("work")
            await inbox_a.send({"op": "output", "work_id": work["work_id"], "output": "partial"})
            await task_when(server, response.json()["task_id"], lambda t: t["last_seq"] >= 4)
            await hello(inbox_b, declaration())
        again = await inbox_b.until("work")
        assert again["attempt"] == 2 and again["input"] == {"text": "a"}
        await inbox_b.send({"op": "output", "work_id": again["work_id"], "output": "whole"})
        await inbox_b.send({"op": "completed", "work_id": again["work_id"]})
        task = await task_when(server, response.json()["task_id"], finished)
    assert task["status"] == "completed"
    assert task["requests"][0]["output"] == ["whole"]
    events = await events_of(server, task["task_id"])
    assert gap_free(events)
    assert [e["type"] for e in events].count("request.started") == 2


async def test_a_silent_workers_work_runs_again_elsewhere(server_factory: Factory) -> None:
    """A worker silent for three heartbeat intervals is closed and its work goes elsewhere."""
    server = worker_server(server_factory)
    async with worker_ws(server) as conn_a, worker_ws(server) as conn_b:
        inbox_a, inbox_b = Inbox(conn_a), Inbox(conn_b)
        await hello(inbox_a, declaration())
        response = await call(server, "upper", [{"text": "a"}])
        await inbox_a.until("work")
        await hello(inbox_b, declaration())
        # Worker A now says nothing; B answers every heartbeat with a ping.
        while True:
            message = await inbox_b.next(timeout=10, skip_heartbeats=False)
            if message["op"] == "heartbeat":
                await inbox_b.send({"op": "ping"})
            elif message["op"] == "work":
                break
        assert message["attempt"] == 2
        await inbox_b.send({"op": "completed", "work_id": message["work_id"]})
        task = await task_when(server, response.json()["task_id"], finished)
        assert task["status"] == "completed"
        assert conn_a.close_code == 1001 or conn_a.state.name in {"CLOSING", "CLOSED"}


async def test_no_worker_queues_the_request_until_one_connects(server_factory: Factory) -> None:
    """With every worker gone, a call shows request.queued no_worker, then runs on a newcomer."""
    server = worker_server(server_factory)
    async with worker_ws(server) as conn:
        await hello(Inbox(conn), declaration())
    response = await call(server, "upper", [{"text": "a"}])
    task_id = response.json()["task_id"]
    await task_when(
        server, task_id, lambda t: t["requests"][0]["status"] == "queued" and t["last_seq"] >= 2
    )
    async with worker_ws(server) as conn:
        inbox = Inbox(conn)
        await hello(inbox, declaration())
        work = await inbox.until("work")
        await inbox.send({"op": "completed", "work_id": work["work_id"]})
        task = await task_when(server, task_id, finished)
    assert task["status"] == "completed"
    events = await events_of(server, task_id)
    queued = [e for e in events if e["type"] == "request.queued"]
    assert [e["data"] for e in queued] == [{"reason": "no_worker"}]


async def test_no_worker_fails_the_request_at_the_skills_timeout(server_factory: Factory) -> None:
    """A remote skill with no worker fails with TIMEOUT once its declared timeout passes."""
    server = worker_server(server_factory)
    async with worker_ws(server) as conn:
        await hello(Inbox(conn), declaration(timeout=0.3))
    response = await call(server, "upper", [{"text": "a"}])
    task = await task_when(server, response.json()["task_id"], finished)
    assert task["status"] == "failed"
    assert task["requests"][0]["error"]["code"] == "TIMEOUT"


async def test_two_workers_of_one_skill_share_the_load(server_factory: Factory) -> None:
    """Two workers of concurrency 1 declaring one skill each get one of two requests."""
    server = worker_server(server_factory)
    async with worker_ws(server) as conn_a, worker_ws(server) as conn_b:
        inbox_a, inbox_b = Inbox(conn_a), Inbox(conn_b)
        await hello(inbox_a, declaration())
        await hello(inbox_b, declaration())
        response = await call(server, "upper", [{"text": "a"}, {"text": "b"}])
        work_a, work_b = await inbox_a.until("work"), await inbox_b.until("work")
        assert {work_a["index"], work_b["index"]} == {0, 1}
        await inbox_a.send({"op": "completed", "work_id": work_a["work_id"]})
        await inbox_b.send({"op": "completed", "work_id": work_b["work_id"]})
        task = await task_when(server, response.json()["task_id"], finished)
    assert task["status"] == "completed"


async def test_a_flooding_worker_loses_nothing(server_factory: Factory) -> None:
    """Thousands of outputs sent at once all become events, in order; the socket stays open."""
    server = worker_server(server_factory)
    count = 3000
    async with worker_ws(server) as conn:
        inbox = Inbox(conn)
        await hello(inbox, declaration(), concurrency=1)
        response = await call(server, "upper", [{"text": "a"}])
        work = await inbox.until("work")
        for start in range(0, count, 100):
            lines = [
                f'{{"op":"output","work_id":"{work["work_id"]}","output":{i}}}'
                for i in range(start, start + 100)
            ]
            await conn.send("\n".join(lines))
        await inbox.send({"op": "completed", "work_id": work["work_id"]})
        await inbox.send({"op": "ping", "ref": "still-there"})
        assert (await inbox.until("pong", timeout=30))["ref"] == "still-there"
        task = await task_when(server, response.json()["task_id"], finished, timeout=30)
    outputs = [
        e["data"] for e in await events_of(server, task["task_id"]) if e["type"] == "request.output"
    ]
    assert outputs == list(range(count))


async def test_requests_waiting_for_a_worker_take_no_slot(server_factory: Factory) -> None:
    """Remote requests waiting for a worker never hold the slots in-process skills run in."""
    server = worker_server(server_factory, concurrency=1, max_parallel=5)
    async with worker_ws(server) as conn:
        await hello(Inbox(conn), declaration())
    waiting = await call(server, "upper", [{"text": str(i)} for i in range(3)])
    await task_when(server, waiting.json()["task_id"], lambda t: t["last_seq"] >= 4)
    echo = await call(server, "echo", [{"text": "still here"}], app="demo", prefer="wait=10")
    assert echo.json()["status"] == "completed"


async def test_a_shutdown_does_not_wait_for_workers_that_are_gone(
    server_factory: Factory, backbone: str
) -> None:
    """Stopping a gateway skips the grace for remote requests: they fail (or go back) at once."""
    server = worker_server(server_factory, shutdown_grace=30)
    async with worker_ws(server) as conn:
        inbox = Inbox(conn)
        await hello(inbox, declaration())
        response = await call(server, "upper", [{"text": "a"}])
        await inbox.until("work")
        started = time.monotonic()
        await asyncio.to_thread(server.stop)
        assert time.monotonic() - started < scaled(10)
    if backbone == "memory":  # no other process could run it: it failed with SHUTDOWN
        stored = await server.runtime.backbone.get_task(response.json()["task_id"])
        assert stored.task.requests[0].error.code == "SHUTDOWN"


async def test_a_message_for_a_work_id_before_hello_gets_not_found(server_factory: Factory) -> None:
    """A worker message naming a work_id before any hello gets op error NOT_FOUND; it stays open."""
    server = worker_server(server_factory)
    async with worker_ws(server) as conn:
        inbox = Inbox(conn)
        await inbox.send({"op": "completed", "work_id": "wrk_never"})
        error = await inbox.until("error")
        assert (error["error"]["code"], error["work_id"]) == ("NOT_FOUND", "wrk_never")
        assert error["error"]["details"] == {"work_id": "wrk_never"}
        welcome = await hello(inbox, declaration())
        assert welcome["op"] == "welcome"
