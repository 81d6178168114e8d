"""skillwire mounted under a prefix in another Starlette app (docs/quickstart's ``/gw``).

A WebSocket on the channel's path skips the middleware stack (see http/_app); the shortcut
must find the path below the mount point, and the rest of the API must still be routed. Every
URL skillwire builds (``Location``, a Task's ``links``, also inside terminal events and
snapshots) carries the prefix (_links.py).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount
from websockets.asyncio.client import connect

from skillwire.protocol import EncodedEvent, Event, EventType
from skillwire.server import create_app, load_config
from skillwire.server._links import rooted_event
from tests.channels.helpers import ws_events_until_terminal, ws_next
from tests.conftest import ADMIN_KEY, free_port, scaled

shortcuts: list[str] = []
HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}


def links_of(task_id: str, root: str = "/gw") -> dict[str, str]:
    return {
        "self": f"{root}/api/v1/tasks/{task_id}",
        "events": f"{root}/api/v1/tasks/{task_id}/events",
    }


@pytest.fixture
def mounted() -> Iterator[str]:
    port = free_port()
    config = load_config(environ={}, overrides={"api_key": ADMIN_KEY, "rate_limit": "0"})
    inner = create_app(config)
    endpoint = inner._ws_endpoint  # type: ignore[attr-defined]

    async def counted(websocket: Any, **kwargs: Any) -> None:
        shortcuts.append(websocket.scope["path"])
        await endpoint(websocket, **kwargs)

    inner._ws_endpoint = counted  # type: ignore[attr-defined]
    shortcuts.clear()
    outer = Starlette(
        routes=[Mount("/gw", app=inner)],
        lifespan=lambda _app: inner.router.lifespan_context(inner),
    )
    server = uvicorn.Server(
        uvicorn.Config(outer, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + scaled(15)
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.01)
    try:
        yield f"127.0.0.1:{port}/gw"
    finally:
        server.should_exit = True
        thread.join(scaled(10))


async def test_a_call_over_the_websocket_of_a_mounted_app(mounted: str) -> None:
    """A WS call on a mounted app takes the shortcut; its terminal Task links carry /gw."""
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with connect(
        f"ws://{mounted}/api/v1/ws", subprotocols=["skillwire.v1"], additional_headers=headers
    ) as conn:  # type: ignore[list-item]
        call: dict[str, Any] = {
            "op": "call",
            "ref": "c",
            "app": "demo",
            "skill": "echo",
            "requests": [{"text": "mounted"}],
        }
        await conn.send(json.dumps(call))
        accepted = await ws_next(conn)
        assert accepted["op"] == "accepted", accepted
        events = await ws_events_until_terminal(conn, accepted["task_id"])
    assert shortcuts == ["/gw/api/v1/ws"]  # past the middleware stack, below the mount point
    assert events[-1]["type"] == "task.completed"
    assert events[-1]["data"]["previews"][0]["text"] == "mounted"
    assert events[-1]["data"]["links"] == links_of(accepted["task_id"])
    async with httpx.AsyncClient(headers=headers) as client:  # HTTP still goes through Starlette
        answer = await client.get(f"http://{mounted}/api/v1/tasks/{accepted['task_id']}")
    assert answer.status_code == 200 and answer.json()["status"] == "completed"


def test_rest_answers_carry_the_prefix(mounted: str) -> None:
    """Location, and links in the call's, GET's, list's and DELETE's Task, start with /gw;
    the Location answers."""
    with httpx.Client(base_url=f"http://{mounted}", headers=HEADERS, timeout=scaled(30)) as client:
        started = client.post(
            "/api/v1/apps/demo/countdown",
            json={"requests": [{"n": 1000, "interval": 0.05}]},
            headers={"Prefer": "respond-async"},
        )
        assert started.status_code == 202, started.text
        task_id = started.json()["task_id"]
        location = started.headers["location"]
        fetched = httpx.get(f"http://{mounted.split('/')[0]}{location}", headers=HEADERS)
        listed = client.get("/api/v1/tasks").json()["items"]
        cancelled = client.delete(f"/api/v1/tasks/{task_id}")
        quick = client.post("/api/v1/apps/demo/echo", json={"requests": [{"text": "a"}]})
    assert location == f"/gw/api/v1/tasks/{task_id}"
    assert started.json()["links"] == links_of(task_id)
    assert fetched.status_code == 200 and fetched.json()["links"] == links_of(task_id)
    assert next(t for t in listed if t["task_id"] == task_id)["links"] == links_of(task_id)
    assert cancelled.json()["links"] == links_of(task_id)
    assert quick.json()["links"] == links_of(quick.json()["task_id"])


@pytest.mark.parametrize("accept", ["text/event-stream", "application/x-ndjson"])
def test_streamed_tasks_carry_the_prefix(mounted: str, accept: str) -> None:
    """The Task inside a terminal event and inside a snapshot has /gw links, on SSE and
    NDJSON, streamed from the call itself or from the events URL."""
    with httpx.Client(base_url=f"http://{mounted}", headers=HEADERS, timeout=scaled(30)) as client:
        streamed = client.post(
            "/api/v1/apps/demo/echo",
            json={"requests": [{"text": "a"}]},
            headers={"Accept": accept},
        )
        events = _events(streamed.text)
        task_id = events[0]["task_id"]
        snapshot = _events(
            client.get(
                f"/api/v1/tasks/{task_id}/events?snapshot=true", headers={"Accept": accept}
            ).text
        )
    assert events[-1]["type"] == "task.completed"
    assert events[-1]["data"]["links"] == links_of(task_id)
    assert [e["type"] for e in snapshot] == ["task.snapshot"]
    assert snapshot[0]["data"]["links"] == links_of(task_id)


def _events(body: str) -> list[dict[str, Any]]:
    """The events of an SSE or NDJSON body."""
    lines = [line.removeprefix("data: ") for line in body.splitlines()]
    return [json.loads(line) for line in lines if line.startswith("{")]


def test_an_unmounted_app_answers_links_as_stored() -> None:
    """With no root_path, an event passes through untouched (the same object, no re-encoding);
    other events than terminal ones and snapshots are never touched."""
    task_data = {"task_id": "tsk_x", "links": links_of("tsk_x", root="")}
    terminal = EncodedEvent.of(
        Event(task_id="tsk_x", seq=3, type=EventType.TASK_COMPLETED, time="t", data=task_data)
    )
    output = EncodedEvent.of(
        Event(task_id="tsk_x", seq=2, type=EventType.REQUEST_OUTPUT, time="t", data=task_data)
    )
    assert rooted_event(terminal, "") is terminal
    assert rooted_event(output, "/gw") is output
    rooted = rooted_event(terminal, "/gw")
    assert json.loads(rooted.json)["data"]["links"] == links_of("tsk_x")
    assert (rooted.seq, rooted.type, rooted.terminal) == (3, "task.completed", True)
