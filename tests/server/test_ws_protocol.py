"""The WebSocket protocol classes `skillwire serve` gives uvicorn: ours, driven with raw frames
over real sockets, and uvicorn's sans-I/O subclass kept for permessage-deflate."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import queue
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from hypothesis import given, settings
from hypothesis import strategies as st
from uvicorn.protocols.utils import ClientDisconnected
from websockets.protocol import State
from websockets.server import ServerProtocol

from skillwire.server._cli import uvicorn_config
from skillwire.server._config import load_config
from skillwire.server._ws_connection import WebSocketConnection
from skillwire.server._ws_frames import (
    HandshakeError,
    accept_key,
    close_payload,
    frame,
    parse_close,
    parse_request,
)
from skillwire.server._ws_protocol import WebSocketProtocol
from tests.conftest import QuickServer, free_port, scaled, start_server

MAX_SIZE = 4096
# What the app saw at the end of each connection, by the `id` in its query string.
_ENDS: dict[str, queue.Queue[dict[str, Any]]] = {}
_LOCK = threading.Lock()


def _ends(ident: str) -> queue.Queue[dict[str, Any]]:
    with _LOCK:
        return _ENDS.setdefault(ident, queue.Queue())


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Routes by path: /echo echoes, /scope describes its scope, /close closes first,
    /reject refuses, /deny answers with its own response, /big sends the sizes asked for."""
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send({"type": message["type"] + ".complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    assert (await receive())["type"] == "websocket.connect"
    path, ident = scope["path"], scope["query_string"].decode().partition("id=")[2]
    if path == "/reject":
        await send({"type": "websocket.close"})
        return
    if path == "/deny":
        await send(
            {"type": "websocket.http.response.start", "status": 401, "headers": [(b"x-why", b"no")]}
        )
        await send({"type": "websocket.http.response.body", "body": b"not ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"you"})
        return
    offered = scope["subprotocols"]
    await send(
        {
            "type": "websocket.accept",
            "subprotocol": offered[0] if offered else None,
            "headers": [(b"x-request-id", b"req_1")],
        }
    )
    if path.startswith("/scope"):
        described = {
            key: scope[key]
            for key in ("type", "http_version", "scheme", "root_path", "path", "subprotocols")
        }
        described.update(
            raw_path=scope["raw_path"].decode(),
            query_string=scope["query_string"].decode(),
            headers=[[name.decode(), value.decode()] for name, value in scope["headers"]],
            client=list(scope["client"]),
            server=list(scope["server"]),
            asgi=scope["asgi"],
            extensions=list(scope["extensions"]),
            state=scope["state"],
        )
        await send({"type": "websocket.send", "text": json.dumps(described)})
    elif path == "/close":
        await send({"type": "websocket.close", "code": 4000, "reason": "done"})
    elif path == "/big":
        for size in (125, 126, 65535, 65536):
            await send({"type": "websocket.send", "text": "x" * size})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            _ends(ident).put(message)
            return
        if path == "/echo":
            if message.get("text") is not None:
                await send({"type": "websocket.send", "text": message["text"]})
            else:
                await send({"type": "websocket.send", "bytes": message["bytes"]})


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, int]]:
    """uvicorn with our class serving _app on a free port (the bare ASGI interface)."""
    port = free_port()
    config = uvicorn.Config(
        _app,
        host="127.0.0.1",
        port=port,
        ws=WebSocketConnection,
        ws_max_size=MAX_SIZE,
        log_config=None,
        lifespan="on",
    )
    quick = QuickServer(config)
    thread = threading.Thread(target=lambda: asyncio.run(quick.serve()), daemon=True)
    thread.start()
    while not quick.started:
        assert thread.is_alive()
        threading.Event().wait(0.01)
    yield "127.0.0.1", port
    quick.should_exit = True
    thread.join(scaled(15))


class Raw:
    """A WebSocket client that writes its frames byte by byte as a test says."""

    def __init__(self, address: tuple[str, int], path: str, headers: dict[str, str]) -> None:
        self.sock = socket.create_connection(address, timeout=scaled(10))
        self.key = base64.b64encode(os.urandom(16)).decode()
        fields = {
            "Host": "localhost",
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": self.key,
            "Sec-WebSocket-Version": "13",
            **headers,
        }
        head = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
        self.sock.sendall(head.encode() + b"\r\n")
        self.buffer = b""
        response = self._until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        self.status = int(response[0].split(" ")[1])
        self.headers = {
            name.lower(): value.strip()
            for name, _, value in (line.partition(":") for line in response[1:] if line)
        }

    def _read(self, size: int) -> bytes:
        while len(self.buffer) < size:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buffer += chunk
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buffer += chunk
        head, _, self.buffer = self.buffer.partition(marker)
        return head

    def body(self) -> bytes:
        return self._read(int(self.headers["content-length"]))

    def send(
        self, opcode: int, payload: bytes, *, fin: bool = True, masked: bool = True, rsv: int = 0
    ) -> None:
        first = (0x80 if fin else 0) | rsv | opcode
        size = len(payload)
        if size < 126:
            head = struct.pack("!BB", first, size | (0x80 if masked else 0))
        elif size < 65536:
            head = struct.pack("!BBH", first, 126 | (0x80 if masked else 0), size)
        else:
            head = struct.pack("!BBQ", first, 127 | (0x80 if masked else 0), size)
        if masked:
            mask = os.urandom(4)
            payload = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
            head += mask
        self.sock.sendall(head + payload)

    def receive(self) -> tuple[int, bytes, int]:
        """The next frame: its opcode, payload and header size."""
        first, second = self._read(2)
        assert not second & 0x80, "server frames are not masked"
        size, header = second & 0x7F, 2
        if size == 126:
            (size,) = struct.unpack("!H", self._read(2))
            header = 4
        elif size == 127:
            (size,) = struct.unpack("!Q", self._read(8))
            header = 10
        assert first & 0x80, "server frames are not fragmented"
        return first & 0x0F, self._read(size), header

    def receive_close(self) -> tuple[int, str]:
        opcode, payload, _ = self.receive()
        assert opcode == 0x8
        return parse_close(payload)

    def at_eof(self) -> bool:
        try:
            self._read(len(self.buffer) + 1)
        except (ConnectionError, OSError):
            return True
        return False

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def connect(server: tuple[str, int]) -> Iterator[Any]:
    opened: list[Raw] = []

    def open_(path: str = "/echo", **headers: str) -> Raw:
        raw = Raw(server, path, headers)
        opened.append(raw)
        return raw

    yield open_
    for raw in opened:
        raw.close()


def _end(ident: str) -> dict[str, Any]:
    return _ends(ident).get(timeout=scaled(10))


def test_handshake_accepts_with_subprotocol_and_extra_headers(connect: Any) -> None:
    """The 101 carries the accept key, the app's subprotocol and its extra headers."""
    raw = connect("/echo?id=hs", **{"Sec-WebSocket-Protocol": "one, two"})
    assert raw.status == 101
    assert raw.headers["sec-websocket-accept"] == accept_key(raw.key.encode()).decode()
    assert raw.headers["sec-websocket-protocol"] == "one"
    assert raw.headers["x-request-id"] == "req_1"
    assert raw.headers["upgrade"].lower() == "websocket"
    raw.send(0x1, "héllo".encode())
    assert raw.receive()[:2] == (0x1, "héllo".encode())
    raw.send(0x2, b"\x00\xff")
    assert raw.receive()[:2] == (0x2, b"\x00\xff")


def test_scope_is_the_one_uvicorn_builds(connect: Any, server: tuple[str, int]) -> None:
    """Type, versions, scheme, addresses, paths, query, lowercased headers, subprotocols."""
    raw = connect("/scope%20x?a=1&id=scope", **{"Sec-WebSocket-Protocol": "p1,p2", "X-Thing": "v"})
    _, payload, _ = raw.receive()
    scope = json.loads(payload)
    assert scope["type"] == "websocket" and scope["http_version"] == "1.1"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["scheme"] == "ws" and scope["root_path"] == ""
    assert scope["path"] == "/scope x" and scope["raw_path"] == "/scope%20x"
    assert scope["query_string"] == "a=1&id=scope"
    assert ["x-thing", "v"] in scope["headers"] and ["host", "localhost"] in scope["headers"]
    assert scope["subprotocols"] == ["p1", "p2"]
    assert scope["server"] == list(server)
    assert scope["client"][0] == "127.0.0.1"
    assert scope["extensions"] == ["websocket.http.response"]
    assert scope["state"] == {}


def test_bad_version_gets_426_and_bad_key_400(server: tuple[str, int]) -> None:
    """An opening handshake RFC 6455 refuses gets its HTTP answer, not a 101."""
    raw = Raw(server, "/echo", {"Sec-WebSocket-Version": "8"})
    assert raw.status == 426 and raw.headers["sec-websocket-version"] == "13"
    raw.close()
    raw = Raw(server, "/echo", {"Sec-WebSocket-Key": "c2hvcnQ="})
    assert raw.status == 400
    raw.close()


def test_parse_request_checks_connection_upgrade_and_method() -> None:
    """A request without `Connection: upgrade`, or not a GET, is no opening handshake."""
    key = b"sec-websocket-key: " + base64.b64encode(b"k" * 16)
    good = [b"upgrade: websocket", b"connection: keep-alive, Upgrade", b"sec-websocket-version: 13"]
    assert parse_request(b"\r\n".join([b"GET /x?y HTTP/1.1", *good, key])).target == b"/x?y"
    with pytest.raises(HandshakeError):
        parse_request(b"\r\n".join([b"GET /x HTTP/1.1", *good[::2], key]))
    with pytest.raises(HandshakeError):
        parse_request(b"\r\n".join([b"POST /x HTTP/1.1", *good, key]))


def test_close_before_accept_is_a_403_and_the_denial_response_is_sent(
    server: tuple[str, int],
) -> None:
    """websocket.close before accept answers 403; websocket.http.response.* its own answer."""
    raw = Raw(server, "/reject", {})
    assert raw.status == 403
    raw.close()
    raw = Raw(server, "/deny", {})
    assert raw.status == 401 and raw.headers["x-why"] == "no"
    assert raw.body() == b"not you"
    raw.close()


def test_fragments_are_joined_and_a_ping_between_them_is_answered(connect: Any) -> None:
    """A text in three frames, a ping among them: the pong first, then the whole message."""
    raw = connect()
    text = "é".encode()  # a character split across two fragments is still valid UTF-8
    raw.send(0x1, b"hel" + text[:1], fin=False)
    raw.send(0x9, b"are you there")
    raw.send(0x0, text[1:] + b"lo ", fin=False)
    raw.send(0x0, b"world")
    assert raw.receive()[:2] == (0xA, b"are you there")
    assert raw.receive()[:2] == (0x1, "helélo world".encode())


def test_unsolicited_pong_is_ignored(connect: Any) -> None:
    """A pong nobody asked for changes nothing."""
    raw = connect()
    raw.send(0xA, b"hi")
    raw.send(0x1, b"after")
    assert raw.receive()[:2] == (0x1, b"after")


@pytest.mark.parametrize(
    ("ident", "frames", "code"),
    [
        ("unmasked", [(0x1, b"x", {"masked": False})], 1002),
        ("rsv", [(0x1, b"x", {"rsv": 0x40})], 1002),
        ("long-ping", [(0x9, b"p" * 126, {})], 1002),
        ("split-ping", [(0x9, b"p", {"fin": False})], 1002),
        ("lone-cont", [(0x0, b"x", {})], 1002),
        ("no-cont", [(0x1, b"x", {"fin": False}), (0x1, b"y", {})], 1002),
        ("opcode", [(0x3, b"x", {})], 1002),
        ("utf8", [(0x1, b"\xc3\x28", {})], 1007),
        ("close-code", [(0x8, struct.pack("!H", 1005), {})], 1002),
        ("close-short", [(0x8, b"\x03", {})], 1002),
        ("close-reason", [(0x8, struct.pack("!H", 1000) + b"\xff", {})], 1007),
    ],
)
def test_protocol_violations_close_with_their_code(
    connect: Any, ident: str, frames: list[tuple[int, bytes, dict[str, Any]]], code: int
) -> None:
    """Each violation is answered with a close frame of its code, told to the app too."""
    raw = connect(f"/echo?id={ident}")
    for opcode, payload, options in frames:
        raw.send(opcode, payload, **options)
    assert raw.receive_close()[0] == code
    assert raw.at_eof()
    assert _end(ident)["code"] == code


def test_message_over_the_limit_is_refused_from_its_header(connect: Any) -> None:
    """A frame announcing more than ws_max_size closes with 1009 before its payload comes."""
    raw = connect("/echo?id=big-header")
    raw.sock.sendall(struct.pack("!BBH", 0x81, 126 | 0x80, MAX_SIZE + 1) + b"mask")
    assert raw.receive_close()[0] == 1009
    assert _end("big-header")["code"] == 1009


def test_fragmented_message_over_the_limit_is_refused(connect: Any) -> None:
    """The limit counts the message, not the frame: fragments add up to 1009."""
    raw = connect("/echo?id=big-fragments")
    raw.send(0x2, b"a" * (MAX_SIZE - 10), fin=False)
    raw.send(0x0, b"b" * 11)
    assert raw.receive_close()[0] == 1009
    assert _end("big-fragments")["code"] == 1009


def test_message_of_exactly_the_limit_arrives_in_pieces(connect: Any) -> None:
    """A message at the limit, written a few bytes at a time, arrives whole."""
    raw = connect()
    payload = bytes(range(256)) * (MAX_SIZE // 256)
    mask = b"\x01\x02\x03\x04"
    data = struct.pack("!BBH", 0x82, 126 | 0x80, len(payload)) + mask
    data += bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    for at in range(0, len(data), 1000):
        raw.sock.sendall(data[at : at + 1000])
    assert raw.receive()[:2] == (0x2, payload)


def test_client_close_is_echoed_and_told_to_the_app(connect: Any) -> None:
    """The client's close code and reason reach the app; the server echoes and hangs up."""
    raw = connect("/echo?id=client-close")
    raw.send(0x8, struct.pack("!H", 4001) + b"bye")
    assert raw.receive_close()[0] == 4001
    assert raw.at_eof()
    assert _end("client-close") == {"type": "websocket.disconnect", "code": 4001, "reason": "bye"}


def test_app_close_waits_for_the_client_reply(connect: Any) -> None:
    """The app's close frame carries its code and reason; the client's reply ends it."""
    raw = connect("/close?id=app-close")
    assert raw.receive_close() == (4000, "done")
    raw.send(0x8, struct.pack("!H", 4000))
    assert raw.at_eof()
    assert _end("app-close")["code"] == 4000


def test_abrupt_close_is_1006(connect: Any) -> None:
    """A connection lost without a close frame ends with 1006 for the app."""
    raw = connect("/echo?id=abrupt")
    raw.send(0x1, b"x")
    raw.receive()
    raw.sock.close()
    assert _end("abrupt")["code"] == 1006


def test_server_frames_use_the_shortest_length(connect: Any) -> None:
    """Text frames of 125, 126, 65535 and 65536 bytes have 2-, 4-, 4- and 10-byte headers."""
    raw = connect("/big")
    sizes = [raw.receive() for _ in range(4)]
    assert [(len(payload), header) for _, payload, header in sizes] == [
        (125, 2),
        (126, 4),
        (65535, 4),
        (65536, 10),
    ]
    assert frame(0x81, b"ab") == b"\x81\x02ab"


class _Transport(asyncio.Transport):
    """A transport that records what is written and lets a test pause and resume writing."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closed = False
        self.reading = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5), "sockname": ("127.0.0.1", 80)}.get(name, default)


async def _idle_app(scope: Any, receive: Any, send: Any) -> None:
    await asyncio.Event().wait()


def _opened(transport: _Transport) -> WebSocketConnection:
    """Our class, handed a request and accepted, over a recording transport."""
    config = uvicorn.Config(_idle_app, ws=WebSocketConnection, log_config=None)
    config.load()
    state = uvicorn.server.ServerState()
    connection = WebSocketConnection(config, state, {})
    connection.connection_made(transport)
    key = base64.b64encode(b"k" * 16)
    connection.data_received(
        b"GET / HTTP/1.1\r\nupgrade: websocket\r\nconnection: upgrade\r\n"
        b"sec-websocket-version: 13\r\nsec-websocket-key: " + key + b"\r\n\r\n"
    )
    return connection


async def test_send_waits_while_writing_is_paused() -> None:
    """pause_writing makes a send wait, resume_writing lets it through, in one write."""
    transport = _Transport()
    connection = _opened(transport)
    await connection.send({"type": "websocket.accept"})
    transport.written.clear()
    connection.pause_writing()
    sending = asyncio.ensure_future(connection.send({"type": "websocket.send", "text": "hi"}))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not sending.done() and transport.written == []
    connection.resume_writing()
    await sending
    assert transport.written == [b"\x81\x02hi"]  # header and payload: one write


async def test_a_send_waiting_for_a_lost_connection_fails() -> None:
    """A send paused on a connection that is then lost raises instead of waiting forever."""
    transport = _Transport()
    connection = _opened(transport)
    await connection.send({"type": "websocket.accept"})
    connection.pause_writing()
    sending = asyncio.ensure_future(connection.send({"type": "websocket.send", "text": "hi"}))
    await asyncio.sleep(0)
    connection.connection_lost(None)
    with pytest.raises(ClientDisconnected):  # an OSError: starlette's 1006
        await sending
    assert await connection.receive() == {"type": "websocket.connect"}
    assert (await connection.receive())["code"] == 1006


async def test_reading_pauses_while_the_app_has_not_taken_a_message() -> None:
    """Messages the app has not received stop the reading until it takes them."""
    transport = _Transport()
    connection = _opened(transport)
    await connection.send({"type": "websocket.accept"})
    connection.data_received(b"\x81\x81abcd" + bytes([ord("x") ^ ord("a")]))
    assert not transport.reading
    assert (await connection.receive())["type"] == "websocket.connect"
    assert await connection.receive() == {"type": "websocket.receive", "text": "x"}
    assert transport.reading


async def test_shutdown_closes_an_open_connection_with_1012() -> None:
    """uvicorn's shutdown sends close 1012 and tells the app."""
    transport = _Transport()
    connection = _opened(transport)
    await connection.send({"type": "websocket.accept"})
    connection.shutdown()
    assert transport.written[-1] == b"\x88\x02" + struct.pack("!H", 1012)
    assert transport.closed
    await connection.receive()  # websocket.connect
    assert (await connection.receive())["code"] == 1012


async def test_shutdown_after_the_clients_close_just_closes() -> None:
    """A connection whose client's close came first is closed by shutdown, nothing written."""
    transport = _Transport()
    connection = _opened(transport)
    await connection.send({"type": "websocket.accept"})
    connection.data_received(b"\x88\x82abcd" + bytes([0x03 ^ ord("a"), 0xE8 ^ ord("b")]))
    transport.written.clear()
    transport.closed = False
    connection.shutdown()
    assert transport.written == [] and transport.closed


def test_uvicorns_shutdown_of_a_closing_connection_just_closes_it() -> None:
    """uvicorn's class (kept for compression) raised InvalidState there; ours closes."""

    class Closing:
        closed = False

        def close(self) -> None:
            self.closed = True

        def write(self, data: bytes) -> None:
            raise AssertionError("nothing is written to a connection that is already closing")

    connection: Any = WebSocketProtocol.__new__(WebSocketProtocol)
    connection.ping_timer = connection.pong_timer = connection.pending_ping_payload = None
    connection.close_sent = False
    connection.handshake_complete = True
    connection.queue = asyncio.Queue()
    connection.conn = ServerProtocol()
    connection.conn.state = State.CLOSING  # the client's close frame was received
    connection.transport = Closing()
    connection.shutdown()
    assert connection.transport.closed


def test_serve_uses_our_class_and_uvicorns_for_compression() -> None:
    """`skillwire serve` (and the test servers) use ours; uvicorn's only with compression."""
    assert uvicorn_config(object(), load_config(environ={})).ws is WebSocketConnection
    compressed = load_config(environ={}, overrides={"ws_compression": True})
    assert uvicorn_config(object(), compressed).ws is WebSocketProtocol


def test_a_skillwire_server_serves_websockets_with_our_class() -> None:
    """An open /api/v1/ws connection of a test server is one of ours, counted as a connection."""
    running = start_server()
    try:
        raw = Raw(
            (running.url.split("//")[1].split(":")[0], int(running.url.rsplit(":", 1)[1])),
            "/api/v1/ws",
            {"Sec-WebSocket-Protocol": "skillwire.v1"},
        )
        assert raw.status == 101
        kinds = running.call_soon(
            lambda: {type(c).__name__ for c in running.server.server_state.connections}
        )
        assert "WebSocketConnection" in kinds
        raw.close()
    finally:
        running.stop()


def test_a_long_close_reason_is_cut_at_a_character() -> None:
    """A close reason over 123 bytes is cut so the frame stays a valid control frame."""
    payload = close_payload(4000, "é" * 100)
    assert len(payload) == 2 + 122
    assert parse_close(payload) == (4000, "é" * 61)


async def test_bytes_after_a_refused_handshake_are_not_read() -> None:
    """A connection whose handshake was refused reads nothing more (no second handshake)."""
    transport = _Transport()
    config = uvicorn.Config(_idle_app, ws=WebSocketConnection, log_config=None)
    config.load()
    connection = WebSocketConnection(config, uvicorn.server.ServerState(), {})
    connection.connection_made(transport)
    connection.data_received(b"GET / HTTP/1.1\r\nupgrade: websocket\r\n\r\n")
    assert transport.written[0].startswith(b"HTTP/1.1 400 ") and transport.closed
    connection.data_received(b"GET / HTTP/1.1\r\n\r\n")
    assert len(transport.written) == 1


async def test_a_send_on_a_writable_transport_never_suspends() -> None:
    """The pump starts a send outside any task and expects it to finish in its first step."""
    transport = _Transport()
    connection = _opened(transport)
    await connection.send({"type": "websocket.accept"})
    sending = connection.send({"type": "websocket.send", "text": "now"})
    with pytest.raises(StopIteration):
        sending.send(None)
    assert transport.written[-1] == b"\x81\x03now"


def _client_frame(first: int, payload: bytes, mask: bytes) -> bytes:
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", first, 0x80 | size)
    elif size < 65536:
        head = struct.pack("!BBH", first, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, size)
    return head + mask + bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))


@settings(max_examples=60, deadline=None)
@given(
    messages=st.lists(
        st.one_of(st.text(max_size=300), st.binary(max_size=300)), min_size=1, max_size=8
    ),
    pieces=st.lists(st.integers(min_value=1, max_value=5), min_size=8, max_size=8),
    cuts=st.lists(st.integers(min_value=1, max_value=200), max_size=30),
    mask=st.binary(min_size=4, max_size=4),
)
def test_messages_arrive_whole_in_order_however_the_bytes_are_cut(
    messages: list[str | bytes], pieces: list[int], cuts: list[int], mask: bytes
) -> None:
    """Fragmented messages with pings between fragments, fed in arbitrary chunks, reach the
    app each once, whole and in order; every ping is answered."""
    stream = b""
    pings = 0
    for message, count in zip(messages, pieces, strict=False):
        data = message.encode() if isinstance(message, str) else message
        opcode = 0x1 if isinstance(message, str) else 0x2
        step = max(1, -(-len(data) // count))
        parts = [data[at : at + step] for at in range(0, len(data), step)] or [b""]
        for index, part in enumerate(parts):
            first = (opcode if index == 0 else 0x0) | (0x80 if index == len(parts) - 1 else 0)
            stream += _client_frame(first, part, mask)
            if index == 0 and len(parts) > 1:
                stream += _client_frame(0x89, b"p%d" % pings, mask)
                pings += 1

    async def run() -> None:
        transport = _Transport()
        connection = _opened(transport)
        await connection.send({"type": "websocket.accept"})
        assert (await connection.receive())["type"] == "websocket.connect"
        received: list[str | bytes] = []
        at = 0
        for cut in [*cuts, len(stream)]:
            connection.data_received(stream[at : at + cut])
            at += cut
            while connection._inbox:
                message = await connection.receive()
                received.append(message.get("text", message.get("bytes")))
            if at >= len(stream):
                break
        assert received == messages
        pongs = [data for data in transport.written if data[:1] == b"\x8a"]
        assert pongs == [b"\x8a" + bytes([len(b"p%d" % n)]) + b"p%d" % n for n in range(pings)]

    asyncio.run(run())


async def test_pings_while_writing_is_paused_get_one_pong_after() -> None:
    """A client that pings and does not read gets one pong, for its latest ping, on resume."""
    transport = _Transport()
    connection = _opened(transport)
    await connection.send({"type": "websocket.accept"})
    transport.written.clear()
    connection.pause_writing()
    mask = b"\x00\x00\x00\x00"
    connection.data_received(b"".join(_client_frame(0x89, b"p%d" % n, mask) for n in range(3)))
    assert transport.written == []
    connection.resume_writing()
    assert transport.written == [b"\x8a\x02p2"]
