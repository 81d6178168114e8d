"""The WebSocket channel when skillwire is mounted under a prefix in another Starlette app.

A WebSocket on the channel's path skips the middleware stack (see http/_app); the shortcut
must find the path below the mount point, and the rest of the API must still be routed.
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

from skillwire.server import create_app, load_config
from tests.channels.helpers import ws_events_until_terminal, ws_next
from tests.conftest import ADMIN_KEY, free_port, scaled

shortcuts: list[str] = []


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
    """A call over the WebSocket of an app mounted under a prefix takes the shortcut and ends."""
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
    async with httpx.AsyncClient(headers=headers) as client:  # HTTP still goes through Starlette
        answer = await client.get(f"http://{mounted}/api/v1/tasks/{accepted['task_id']}")
    assert answer.status_code == 200 and answer.json()["status"] == "completed"
