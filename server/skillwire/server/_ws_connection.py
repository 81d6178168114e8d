"""skillwire's WebSocket protocol under uvicorn: RFC 6455 straight on the asyncio transport.

uvicorn's own classes (``websockets_sansio_impl`` and the others) keep, per connection, an
``asyncio.Queue``, an ``Event``, websockets' protocol state and the upgrade request's parsed
headers, and build each frame through websockets' ``Frame`` objects and a ``data_to_send()``
list: ~6 KiB per idle connection and ~10 µs per lone event (docs/performance.md, "Our own
WebSocket protocol"). This class holds a few slots, allocates its inbox and its waiters only
while they are needed, and writes a frame as its header and payload in one
``transport.write``. The app sees the ASGI websocket scope and messages uvicorn gives it.

The lifecycle: ``CONNECTING`` (the request was accepted, the app decides) → ``OPEN`` (101
sent) → ``CLOSING`` (our close frame sent, the client's awaited) → ``CLOSED``; a refusal, a
failed frame, the client's close and a lost connection lead to ``CLOSED`` directly. The app
is told once how it ended (``websocket.disconnect``: the client's code, 1006 when the
connection was lost, the code we failed with, or 1012 at shutdown).

No protocol pings: skillwire's channels send application heartbeats from one runtime timer,
and a heartbeat that cannot be delivered ends the connection (the outbox fills, 1013); the
socket also gets TCP keepalive, so the kernel notices a silent peer with no timer of ours.
uvicorn's ``ws_ping_interval`` and ``ws_ping_timeout`` are therefore not used.
permessage-deflate is not implemented: ``uvicorn_config`` picks uvicorn's class when
compression is configured.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from typing import Any, Final, cast
from urllib.parse import unquote

from uvicorn.config import Config
from uvicorn.protocols.utils import (
    ClientDisconnected,
    get_client_addr,
    get_local_addr,
    get_path_with_query_string,
    get_remote_addr,
    is_ssl,
)
from uvicorn.server import ServerState

from ._ws_frames import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    TEXT,
    HandshakeError,
    accept_key,
    apply_mask,
    close_payload,
    frame,
    http_response,
    parse_close,
    parse_request,
)

__all__ = ["WebSocketConnection"]

log = logging.getLogger("uvicorn.error")

CONNECTING: Final = 0
OPEN: Final = 1
CLOSING: Final = 2
CLOSED: Final = 3

CLOSE_TIMEOUT = 10.0  # seconds the client has to answer our close frame
# TCP keepalive: a peer silent for a minute is probed every 10 s and dropped after 3 misses.
_KEEPALIVE = (
    (getattr(socket, "TCP_KEEPIDLE", None), 60),
    (getattr(socket, "TCP_KEEPINTVL", None), 10),
    (getattr(socket, "TCP_KEEPCNT", None), 3),
)
_CONNECT: Final = {"type": "websocket.connect"}


class _Fragments:
    """A message arriving in several frames: its opcode and the payloads so far."""

    __slots__ = ("opcode", "parts", "size")

    def __init__(self, opcode: int, first: bytes) -> None:
        self.opcode, self.parts, self.size = opcode, [first], len(first)


class WebSocketConnection(asyncio.Protocol):
    __slots__ = (
        "_app_state",
        "_buffer",
        "_close_timer",
        "_disconnect",
        "_fragments",
        "_inbox",
        "_pong",
        "_read_paused",
        "_receiver",
        "_response",
        "_state",
        "_writable",
        "_write_paused",
        "config",
        "scope",
        "server_state",
        "transport",
    )

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,  # uvicorn's signature; unused
    ) -> None:
        if not config.loaded:
            config.load()  # pragma: no cover
        self.config = config
        self.server_state = server_state
        self._app_state: dict[str, Any] | None = app_state  # copied into the scope, then let go
        self.scope: dict[str, Any] = {}  # the ASGI scope, from the opening handshake on
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self._state = CONNECTING
        self._buffer: bytearray | None = None  # the bytes of a frame not complete yet
        self._fragments: _Fragments | None = None
        self._inbox: deque[dict[str, Any]] | None = None
        self._receiver: asyncio.Future[dict[str, Any]] | None = None
        self._disconnect: dict[str, Any] | None = None
        self._response: tuple[int, list[tuple[bytes, bytes]], bytes] | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._writable: asyncio.Future[None] | None = None
        self._pong: bytes | None = None  # the last ping's payload, while writing is paused
        self._read_paused = False
        self._write_paused = False

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass of it
        self.server_state.connections.add(self)  # type: ignore[arg-type]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                for option, value in _KEEPALIVE:
                    if option is not None:
                        sock.setsockopt(socket.IPPROTO_TCP, option, value)
            except OSError:  # pragma: no cover - a platform without these options
                pass

    def connection_lost(self, exc: Exception | None) -> None:
        self._state = CLOSED
        self._ended(1006)
        self.server_state.connections.discard(self)
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        # asyncio never resumes writing on a transport lost while paused.
        self._resume()
        if exc is None:
            self.transport.close()

    def eof_received(self) -> None:
        return None  # the transport closes; connection_lost tells the app

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._resume()

    def _resume(self) -> None:
        self._write_paused = False
        if self._pong is not None:
            if self._state == OPEN:
                self._write(0x8A, self._pong)
            self._pong = None
        if self._writable is not None:
            if not self._writable.done():
                self._writable.set_result(None)
            self._writable = None

    def shutdown(self) -> None:
        """uvicorn's server shutdown: close an open connection with 1012 (service restart)."""
        if self._state == OPEN:
            self._ended(1012)
            self._write(0x88, close_payload(1012))
        elif self._state == CONNECTING and self._response is None and self.scope:
            self._refuse_500()
        # CLOSING or CLOSED: a close handshake is under way or over; nothing left to say.
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        self._state = CLOSED
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._state == CLOSED:
            return  # refused, failed or closed: what still comes is not read
        if not self.scope:
            self._handshake(data)
            return
        buffer = self._buffer
        if buffer is not None:
            buffer += data  # the bytearray kept from the last call
            data = buffer  # type: ignore[assignment]
        end = len(data)
        at = self._frames(data, end)
        if at >= end:
            self._buffer = None
        elif buffer is None:
            self._buffer = bytearray(data[at:])
        else:
            del buffer[:at]
        if self._inbox and not self._read_paused and self._state < CLOSED:
            # The app has not taken what came: read no more until it does.
            self._read_paused = True
            self.transport.pause_reading()

    # -- the opening handshake ---------------------------------------------------------------
    def _handshake(self, data: bytes) -> None:
        head, blank, rest = data.partition(b"\r\n\r\n")
        try:
            if not blank:
                raise HandshakeError(400, "incomplete request")
            request = parse_request(head)
        except HandshakeError as exc:
            log.info("WebSocket opening handshake failed: %s", exc)
            headers = [(b"sec-websocket-version", b"13")] if exc.status == 426 else []
            self._state = CLOSED
            self.transport.write(
                http_response(
                    exc.status, headers, f"Failed to open a WebSocket connection: {exc}.\n".encode()
                )
            )
            self.transport.close()
            return
        raw_path, _, query_string = request.target.partition(b"?")
        subprotocols = [
            token.strip()
            for name, value in request.headers
            if name == b"sec-websocket-protocol"
            for token in value.decode("latin-1").split(",")
        ]
        config, transport = self.config, self.transport
        root_path = config.root_path
        self.scope = {
            "type": "websocket",
            "asgi": {"version": config.asgi_version, "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": "wss" if is_ssl(transport) else "ws",
            "server": get_local_addr(transport),
            "client": get_remote_addr(transport),
            "root_path": root_path,
            "path": root_path + unquote(raw_path.decode("latin-1")),
            "raw_path": root_path.encode("ascii") + raw_path,
            "query_string": query_string,
            "headers": request.headers,
            "subprotocols": subprotocols,
            "state": (self._app_state or {}).copy(),
            "extensions": {"websocket.http.response": {}},
        }
        self._app_state = None
        self._inbox = deque((_CONNECT,))
        task = asyncio.get_running_loop().create_task(self._run_asgi())
        tasks = self.server_state.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        if rest:
            self.data_received(rest)

    async def _run_asgi(self) -> None:
        try:
            result = await self.config.loaded_app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except BaseException:
            log.exception("Exception in ASGI application\n")
            self._refuse_500()
        else:
            if self._state == CONNECTING:
                log.error("ASGI callable returned without completing handshake.")
                self._refuse_500()
            elif result is not None:
                log.error("ASGI callable should return None, but returned '%s'.", result)
        if self._close_timer is None:
            self._state = CLOSED
            self.transport.close()

    def _refuse_500(self) -> None:
        if self._state == CONNECTING and self._response is None:
            self._state = CLOSED
            self.transport.write(http_response(500, [], b"Internal Server Error"))

    # -- frames from the client --------------------------------------------------------------
    def _frames(self, data: bytes | bytearray, end: int) -> int:
        """Handle the complete frames in ``data``; return where the first incomplete starts."""
        at = 0
        max_size = self.config.ws_max_size
        while end - at >= 2 and self._state < CLOSED:
            first, second = data[at], data[at + 1]
            size = second & 0x7F
            start = at + 6  # the header with its mask, for a payload under 126 bytes
            if size == 126:
                if end - at < 4:
                    break
                size = int.from_bytes(data[at + 2 : at + 4], "big")
                start += 2
            elif size == 127:
                if end - at < 10:
                    break
                size = int.from_bytes(data[at + 2 : at + 10], "big")
                start += 8
            opcode = first & 0x0F
            if first & 0x70 or not second & 0x80:
                return self._fail(1002, "reserved bits set" if first & 0x70 else "unmasked frame")
            if opcode >= CLOSE:
                if opcode > 0xA or size > 125 or not first & 0x80:
                    return self._fail(1002, "invalid control frame")
            elif opcode > BINARY:
                return self._fail(1002, "reserved opcode")
            elif (self._fragments is None) != (opcode != CONTINUATION):
                return self._fail(
                    1002, "unexpected continuation" if opcode == 0 else "expected continuation"
                )
            elif size + (self._fragments.size if self._fragments else 0) > max_size:
                return self._fail(1009, f"message over {max_size} bytes")
            if end - start < size:
                break  # the payload is not all here: wait for more (never more than max_size)
            mask = data[start - 4 : start]
            at = start + size
            payload = apply_mask(data[start:at], mask)
            if opcode >= CLOSE:
                self._control(opcode, payload)
            elif not first & 0x80:
                if self._fragments is None:
                    self._fragments = _Fragments(opcode, payload)
                else:
                    self._fragments.parts.append(payload)
                    self._fragments.size += size
            elif self._fragments is not None:
                fragments, self._fragments = self._fragments, None
                fragments.parts.append(payload)
                self._message(fragments.opcode, b"".join(fragments.parts))
            else:
                self._message(opcode, payload)
        return at

    def _message(self, opcode: int, payload: bytes) -> None:
        if self._state != OPEN:
            return  # past our close frame: the client's close is all that matters
        if opcode == TEXT:
            message: dict[str, Any]
            try:
                message = {"type": "websocket.receive", "text": payload.decode("utf-8")}
            except UnicodeDecodeError:
                self._fail(1007, "invalid UTF-8 text")
                return
        else:
            message = {"type": "websocket.receive", "bytes": payload}
        self._deliver(message)

    def _control(self, opcode: int, payload: bytes) -> None:
        if opcode == PING:
            if self._state != OPEN:
                return
            if self._write_paused:
                # A client that pings and does not read must not grow our write buffer: only
                # the latest ping is answered once writing resumes (RFC 6455 5.5.3 allows it).
                self._pong = payload
            else:
                self._write(0x8A, payload)
            return
        if opcode != CLOSE:
            return  # a pong: we send no pings, so it answers nothing
        try:
            code, reason = parse_close(payload)
        except ValueError as exc:
            self._fail(exc.args[0], "invalid close frame")
            return
        if self._state == OPEN:
            self._ended(code, reason)
            self._write(0x88, payload[:2])  # echo the code (none for none)
        self._state = CLOSED
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        self.transport.close()

    def _fail(self, code: int, reason: str) -> int:
        """Close the connection for a protocol violation; returns a position past any data."""
        log.debug("WebSocket failed with %d: %s", code, reason)
        if self._state == OPEN:
            self._ended(code, reason)
            self._write(0x88, close_payload(code, reason))
        self._state = CLOSED
        self.transport.close()
        return 1 << 62

    def _write(self, first: int, payload: bytes) -> None:
        self.transport.write(frame(first, payload))

    # -- to and from the app -----------------------------------------------------------------
    def _deliver(self, message: dict[str, Any]) -> None:
        receiver = self._receiver
        if receiver is not None and not self._inbox:
            self._receiver = None
            if not receiver.done():
                receiver.set_result(message)
                return
        if self._inbox is None:
            self._inbox = deque()
        self._inbox.append(message)

    def _ended(self, code: int, reason: str = "") -> None:
        """How the connection ended, for the app (once: the first cause is the one)."""
        if self._disconnect is None:
            self._disconnect = {"type": "websocket.disconnect", "code": code, "reason": reason}
            if self._receiver is not None and not self._inbox:
                receiver, self._receiver = self._receiver, None
                if not receiver.done():
                    receiver.set_result(self._disconnect)

    async def receive(self) -> dict[str, Any]:
        inbox = self._inbox
        if inbox:
            message = inbox.popleft()
            if not inbox:
                self._inbox = None
                if self._read_paused:
                    self._read_paused = False
                    if self._state < CLOSED:
                        self.transport.resume_reading()
            return message
        if self._disconnect is not None:
            return self._disconnect
        self._receiver = asyncio.get_running_loop().create_future()
        return await self._receiver

    async def send(self, message: dict[str, Any]) -> None:
        if self._write_paused:
            if self._writable is None:
                self._writable = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._writable)
        kind = message["type"]
        state = self._state
        if state == OPEN:
            if kind == "websocket.send":
                if self.transport.is_closing():
                    raise ClientDisconnected
                text = message.get("text")
                if text is not None:
                    self.transport.write(frame(0x81, text.encode("utf-8")))
                else:
                    self.transport.write(frame(0x82, message["bytes"]))
            elif kind == "websocket.close":
                code, reason = message.get("code", 1000), message.get("reason") or ""
                self._ended(code, reason)
                self._write(0x88, close_payload(code, reason))
                self._state = CLOSING
                if self._read_paused:  # the client's close frame must still be read
                    self._read_paused = False
                    self.transport.resume_reading()
                self._close_timer = asyncio.get_running_loop().call_later(
                    CLOSE_TIMEOUT, self.transport.close
                )
            else:
                raise RuntimeError(
                    "Expected ASGI message 'websocket.send' or 'websocket.close', "
                    f"but got '{kind}'."
                )
        elif state == CONNECTING and self._response is None:
            self._answer(kind, message)
        elif self._response is not None and state == CONNECTING:
            self._respond_body(kind, message)
        elif state == CLOSED:
            raise ClientDisconnected  # the client closed or went away, or the server shut down
        else:
            raise RuntimeError(
                f"Unexpected ASGI message '{kind}', after sending 'websocket.close'."
            )

    def _answer(self, kind: str, message: dict[str, Any]) -> None:
        """The app's answer to the opening handshake: accept, refuse, or its own response."""
        scope, transport = self.scope, self.transport
        if kind == "websocket.accept":
            log.info(
                '%s - "WebSocket %s" [accepted]',
                get_client_addr(scope),  # type: ignore[arg-type]
                get_path_with_query_string(scope),  # type: ignore[arg-type]
            )
            key = next(value for name, value in scope["headers"] if name == b"sec-websocket-key")
            head = [
                b"HTTP/1.1 101 Switching Protocols",
                b"upgrade: websocket",
                b"connection: Upgrade",
                b"sec-websocket-accept: " + accept_key(key),
            ]
            for name, value in self.server_state.default_headers:
                head.append(name + b": " + value)
            subprotocol = message.get("subprotocol")
            if subprotocol:
                head.append(b"sec-websocket-protocol: " + subprotocol.encode("latin-1"))
            for name, value in message.get("headers") or ():
                head.append(name.lower() + b": " + value)
            if not transport.is_closing():
                self._state = OPEN
                transport.write(b"\r\n".join(head) + b"\r\n\r\n")
        elif kind == "websocket.close":
            log.info(
                '%s - "WebSocket %s" 403',
                get_client_addr(scope),  # type: ignore[arg-type]
                get_path_with_query_string(scope),  # type: ignore[arg-type]
            )
            self._ended(1006)
            self._state = CLOSED
            transport.write(http_response(403, []))
            transport.close()
        elif kind == "websocket.http.response.start":
            status = message["status"]
            if not 100 <= status < 600:
                raise RuntimeError(f"Invalid HTTP status code '{status}' in response.")
            log.info(
                '%s - "WebSocket %s" %d',
                get_client_addr(scope),  # type: ignore[arg-type]
                get_path_with_query_string(scope),  # type: ignore[arg-type]
                status,
            )
            self._response = (status, list(message.get("headers") or ()), b"")
        else:
            raise RuntimeError(
                "Expected ASGI message 'websocket.accept', 'websocket.close' "
                f"or 'websocket.http.response.start' but got '{kind}'."
            )

    def _respond_body(self, kind: str, message: dict[str, Any]) -> None:
        assert self._response is not None
        if kind != "websocket.http.response.body":
            raise RuntimeError(
                f"Expected ASGI message 'websocket.http.response.body' but got '{kind}'."
            )
        status, headers, body = self._response
        body += message.get("body", b"")
        self._response = (status, headers, body)
        if not message.get("more_body", False):
            self._ended(1006)
            self._state = CLOSED
            self.transport.write(http_response(status, [(n.lower(), v) for n, v in headers], body))
            self.transport.close()
