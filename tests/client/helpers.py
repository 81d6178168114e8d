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
