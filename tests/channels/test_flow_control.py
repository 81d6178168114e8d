"""Slow clients are dropped instead of growing memory, and clients that leave leave nothing behind."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from skillwire.server import App, Context
from tests.channels.helpers import seqs, sse_events, start_task, ws, ws_events_until_terminal
from tests.conftest import ADMIN_KEY, RunningServer, scaled, wait_until

bulk = App("bulk")


@bulk.skill(mode="long")
async def blob(
    ctx: Context, n: int = 2000, size: int = 16_000, pause: float = 0.0
) -> AsyncIterator[dict[str, Any]]:
    # ``pause``: time for a streaming call's subscription to go live first. Events stored
    # before it is live are replayed, and a replay waits for the reader instead of cutting it.
    await asyncio.sleep(pause)
    payload = "x" * size
    for i in range(n):
        yield {"i": i, "payload": payload}


# 2,000 outputs of 8 KB are 16 MB of log: past the memory backbone's max_log_bytes (16 MiB),
# which would answer the resume with a snapshot. These tests resume from the log itself.
WHOLE_LOG = {"max_log_bytes": 64 * 1024 * 1024}


def _small_buffer_socket(server: RunningServer) -> socket.socket:
    """A connected socket with a small receive buffer, so a reader that stops reading is felt."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    port = int(server.url.rsplit(":", 1)[1])
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


def _dechunk(body: bytes) -> bytes:
    """The payload of a chunked HTTP/1.1 body (complete chunks only: the stream was cut)."""
    out = bytearray()
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0 or len(rest) < size:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return bytes(out)


def _start_blob(server: RunningServer, n: int) -> str:
    with server.client() as client:
        response = client.post(
            "/api/v1/apps/bulk/blob",
            json={"requests": [{"n": n, "size": 8000}]},
            headers={"Prefer": "respond-async"},
        )
    assert response.status_code == 202
    return response.json()["task_id"]  # type: ignore[no-any-return]


async def _raw_ws_call_then_stall(
    server: RunningServer, call: dict[str, Any]
) -> tuple[list[Any], int | None]:
    """Open a WS on a small-buffer socket, send one op, stop reading for a while, then read all.

    websockets' sans-I/O ClientProtocol does the framing, so nothing reads behind our back.
    """
    protocol = ClientProtocol(
        parse_uri(f"{server.ws_url}/api/v1/ws"),
        subprotocols=[Subprotocol("skillwire.v1")],
        max_size=None,
    )
    request = protocol.connect()
    request.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
    protocol.send_request(request)
    reader, writer = await asyncio.open_connection(sock=_small_buffer_socket(server))

    def flush() -> None:
        for data in protocol.data_to_send():
            writer.write(data)

    flush()
    while protocol.state is State.CONNECTING:
        protocol.receive_data(await reader.read(65536))
    assert protocol.handshake_exc is None
    protocol.send_text(json.dumps(call).encode())
    flush()
    await writer.drain()
    await asyncio.sleep(scaled(2))  # stop reading while the task bursts
    messages: list[Any] = []
    async with asyncio.timeout(scaled(30)):
        while True:
            data = await reader.read(1 << 20)
            if data:
                protocol.receive_data(data)
            else:
                protocol.receive_eof()
            for event in protocol.events_received():
                if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                    messages.extend(json.loads(line) for line in event.data.decode().split("\n"))
            flush()
            if not data or protocol.state is State.CLOSED:
                break
    writer.close()
    return messages, protocol.close_rcvd.code if protocol.close_rcvd else None


async def test_websocket_client_that_stops_reading_is_closed_1013_and_resumes(
    server_factory,
) -> None:  # type: ignore[no-untyped-def]
    """A WS reader that stops reading is closed with 1013; resuming from its last seq loses nothing."""
    server = server_factory({"send_queue": 32, **WHOLE_LOG}, apps=[bulk])
    call = {
        "op": "call",
        "ref": "c",
        "app": "bulk",
        "skill": "blob",
        "requests": [{"n": 2000, "size": 8000}],
    }
    messages, close_code = await _raw_ws_call_then_stall(server, call)
    assert close_code == 1013
    task_id = messages[0]["task_id"]
    got = [m["event"] for m in messages if m["op"] == "event"]
    assert got, "some events were delivered before the close"
    assert got[-1]["type"] != "task.completed"
    assert seqs(got) == list(range(1, len(got) + 1))
    async with ws(server, max_size=None) as conn:
        await conn.send(
            json.dumps({"op": "subscribe", "ref": "s", "task_id": task_id, "after": got[-1]["seq"]})
        )
        got.extend(await ws_events_until_terminal(conn, task_id))
    assert seqs(got) == list(range(1, len(got) + 1))
    assert sum(1 for e in got if e["type"] == "request.output") == 2000


async def test_sse_client_that_stops_reading_has_its_stream_ended(server_factory) -> None:  # type: ignore[no-untyped-def]
    """An SSE reader that stops reading has its stream ended; Last-Event-ID then resumes losslessly."""
    server = server_factory({"send_queue": 32, **WHOLE_LOG}, apps=[bulk])
    reader, writer = await asyncio.open_connection(sock=_small_buffer_socket(server))
    body = json.dumps({"requests": [{"n": 2000, "size": 8000, "pause": scaled(0.5)}]}).encode()
    writer.write(
        b"POST /api/v1/apps/bulk/blob HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n"
        b"Authorization: Bearer " + ADMIN_KEY.encode() + b"\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    await writer.drain()
    await asyncio.sleep(scaled(2))  # stop reading while the task bursts
    async with asyncio.timeout(scaled(30)):
        raw = await reader.read()  # until the server ends the stream and closes
    writer.close()
    got: list[Any] = [
        json.loads(line[6:])
        for line in _dechunk(raw.split(b"\r\n\r\n", 1)[1]).split(b"\n")
        if line.startswith(b"data: ")
    ]
    assert got[-1]["type"] != "task.completed", "the stream should have been cut"
    assert seqs(got) == list(range(1, len(got) + 1))
    task_id = got[0]["task_id"]
    got.extend(sse_events(server, task_id, headers={"Last-Event-ID": str(got[-1]["seq"])}))
    assert seqs(got) == list(range(1, len(got) + 1))
    assert got[-1]["type"] == "task.completed"


def _server_tasks(server: RunningServer) -> int:
    return server.call_soon(lambda: len(asyncio.all_tasks(server.server_loop)))  # type: ignore[no-any-return]


async def test_200_disconnects_leave_no_subscriber_queue_or_task(server: RunningServer) -> None:
    """After 200 connect/subscribe/disconnect cycles the server holds no leftover state."""
    task_id = start_task(server, "countdown", [{"n": 10_000, "interval": 0.05}])
    backbone = server.runtime.backbone
    wait_until(lambda: server.call_soon(backbone.listener_count) == 0)
    baseline_tasks = _server_tasks(server)
    for _ in range(100):
        async with ws(server) as conn:
            await conn.send(json.dumps({"op": "subscribe", "ref": "s", "task_id": task_id}))
            await conn.recv()
            await conn.recv()
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": "Bearer sk_test_admin"}
    ) as client:
        for _ in range(100):
            async with client.stream("GET", f"/api/v1/tasks/{task_id}/events") as response:
                async for _ in response.aiter_lines():
                    break
    wait_until(lambda: server.call_soon(backbone.listener_count) == 0, timeout=10)
    wait_until(
        lambda: server.runtime.open_sockets == 0 and server.runtime.open_streams == 0, timeout=10
    )
    wait_until(lambda: _server_tasks(server) <= baseline_tasks, timeout=10)
    with server.client() as client:
        client.delete(f"/api/v1/tasks/{task_id}")
