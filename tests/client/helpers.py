"""Helpers for the client tests: a cuttable TCP proxy and a scripted fake WebSocket server."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve

from skillwire.protocol import format_time

TERMINAL = {"task.completed", "task.partial", "task.failed", "task.cancelled"}


class TcpProxy:
    """Forwards 127.0.0.1:port to a target port; ``cut()`` kills every open connection.

    It keeps listening after a cut, so a client can reconnect through it. ``upstream`` holds
    the bytes clients sent, for checking what a reconnect asked for; ``refuse`` is how many of
    the next connections to accept and drop at once (a server that is down).
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.accepted = 0
        self.refuse = 0
        self.upstream = bytearray()
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self._pumps: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self.cut()
        for pump in list(self._pumps):
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cut(self) -> None:
        """Abort every open connection, both ways, as a network failure would."""
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.refuse > 0:
            self.refuse -= 1
            client_w.transport.abort()
            return
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_w.transport.abort()
            return
        self._links.update((client_w, server_w))
        pumps = [
            asyncio.create_task(self._pump(client_r, server_w, record=True)),
            asyncio.create_task(self._pump(server_r, client_w, record=False)),
        ]
        self._pumps.update(pumps)
        for pump in pumps:
            pump.add_done_callback(self._pumps.discard)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, record: bool
    ) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                if record:
                    self.upstream.extend(data)
                writer.write(data)
                await writer.drain()
        writer.transport.abort()
        self._links.discard(writer)


def event(task_id: str, seq: int, type_: str = "request.output", **extra: Any) -> dict[str, Any]:
    """An event as the server would send it (a terminal one carries a minimal Task)."""
    data: Any = extra.pop("data", {"type": "tick", "i": seq})
    if type_ in TERMINAL:
        data = task_json(task_id, seq, type_.removeprefix("task."))
    body = {"task_id": task_id, "seq": seq, "type": type_, "time": format_time(0), "data": data}
    if type_.startswith("request."):
        body["index"] = 0
    body.update(extra)
    return body


def task_json(task_id: str, last_seq: int, status: str) -> dict[str, Any]:
    now = format_time(0)
    return {
        "task_id": task_id,
        "app": "demo",
        "skill": "countdown",
        "status": status,
        "created_at": now,
        "updated_at": now,
        "finished_at": now if status not in ("queued", "running") else None,
        "requests": [],
        "previews": [],
        "error": None,
        "last_seq": last_seq,
        "metadata": {},
        "links": {"self": f"/api/v1/tasks/{task_id}", "events": f"/api/v1/tasks/{task_id}/events"},
    }


def frame(*messages: dict[str, Any]) -> str:
    """One text frame carrying several messages, one JSON object per line."""
    return "\n".join(json.dumps(m) for m in messages)


def event_frame(*events: dict[str, Any]) -> str:
    return frame(*({"op": "event", "event": e} for e in events))


Script = Callable[[ServerConnection, dict[str, Any], int], Awaitable[None]]


class FakeWebSocketServer:
    """A WebSocket server that runs ``script(connection, subscribe_op, attempt)`` per connection.

    It answers the first op (``subscribe``) with ``subscribed`` and records every op, so a test
    can check the ``after`` of each reconnect.
    """

    def __init__(self, script: Script) -> None:
        self.script = script
        self.ops: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._server: Server | None = None

    async def _handler(self, connection: ServerConnection) -> None:
        attempt = len(self.ops)
        self.headers.append(dict(connection.request.headers) if connection.request else {})
        op = json.loads(await connection.recv())
        self.ops.append(op)
        await connection.send(
            json.dumps({"op": "subscribed", "ref": op.get("ref"), "task_id": op["task_id"]})
        )
        await self.script(connection, op, attempt)

    async def __aenter__(self) -> FakeWebSocketServer:
        self._server = await serve(self._handler, "127.0.0.1", 0, subprotocols=["skillwire.v1"])  # type: ignore[list-item]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def ws_url(self) -> str:
        assert self._server is not None
        port = next(iter(self._server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}/api/v1/ws"


class StubEventServer:
    """A real HTTP server (uvicorn, on a free port) that streams fixed events of one task.

    ``GET /api/v1/tasks/{id}/events`` answers ``events`` (JSON objects, sent as they are, made
    up or not) as SSE or NDJSON after the ``Last-Event-ID`` / ``?after=`` the client sends;
    ``GET /api/v1/tasks/{id}`` answers ``task`` (running, so a follower does not stop early).
    """

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self.port = 0
        self._server: Any = None
        self._serving: asyncio.Task[None] | None = None

    def _app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse, Response
        from starlette.routing import Route

        async def stream(request: Request) -> Response:
            after = int(
                request.headers.get("last-event-id") or request.query_params.get("after", 0)
            )
            todo = [e for e in self.events if e["seq"] > after]
            if "text/event-stream" in request.headers.get("accept", ""):
                body = "".join(
                    f"id: {e['seq']}\nevent: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in todo
                )
                return Response(body, media_type="text/event-stream")
            body = "".join(json.dumps(e) + "\n" for e in todo)
            return Response(body, media_type="application/x-ndjson")

        async def task(request: Request) -> Response:
            task_id = request.path_params["task_id"]
            return JSONResponse(task_json(task_id, self.events[-1]["seq"], "running"))

        return Starlette(
            routes=[
                Route("/api/v1/tasks/{task_id}/events", stream),
                Route("/api/v1/tasks/{task_id}", task),
            ]
        )

    async def __aenter__(self) -> StubEventServer:
        import socket

        import uvicorn

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app(), host="127.0.0.1", port=self.port, log_config=None, lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._serving = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._serving.done():
                self._serving.result()
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._serving is not None
        self._server.should_exit = True
        await self._serving

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"
