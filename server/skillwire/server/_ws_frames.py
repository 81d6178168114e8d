"""RFC 6455 pieces without I/O: the opening handshake's checks, frame headers, close payloads.

``_ws_connection.py`` moves bytes; what a byte means is decided here (no asyncio, no sockets),
so each rule is tested with bytes in memory.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from email.utils import formatdate
from http import HTTPStatus

try:  # websockets' C loop; its pure-Python twin where the extension was not built
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover
    from websockets.utils import apply_mask

__all__ = [
    "BINARY",
    "CLOSE",
    "CONTINUATION",
    "PING",
    "PONG",
    "TEXT",
    "HandshakeError",
    "Request",
    "accept_key",
    "apply_mask",
    "close_payload",
    "frame",
    "http_response",
    "parse_close",
    "parse_request",
]

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# Codes a peer may send in a close frame (RFC 6455 7.4, the IANA registry, and 3000-4999);
# 1005, 1006 and 1015 only ever describe a close, they are never sent.
_SENDABLE = frozenset((1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014))
_PACK_16 = struct.Struct("!BBH").pack
# The scope keeps every header for the connection's life: the usual names are shared objects
# instead of one copy per connection.
_NAMES = {
    name: name
    for name in (
        b"accept-encoding",
        b"accept-language",
        b"authorization",
        b"cache-control",
        b"connection",
        b"cookie",
        b"host",
        b"origin",
        b"pragma",
        b"sec-websocket-extensions",
        b"sec-websocket-key",
        b"sec-websocket-protocol",
        b"sec-websocket-version",
        b"upgrade",
        b"user-agent",
        b"x-api-key",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-request-id",
    )
}
_PACK_64 = struct.Struct("!BBQ").pack


class HandshakeError(Exception):
    """The upgrade request is not a WebSocket opening handshake we can accept."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Request:
    """The parts of an upgrade request a connection needs: its target and its headers."""

    __slots__ = ("headers", "target")

    def __init__(self, target: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        self.target, self.headers = target, headers


def parse_request(head: bytes) -> Request:
    """Parse and check the request head (up to, without, the blank line).

    uvicorn hands over the request it parsed (httptools), rebuilt as bytes: the syntax is
    sound; what is checked is what RFC 6455 4.2.1 asks of an opening handshake.
    """
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or parts[0] != b"GET" or parts[2] != b"HTTP/1.1":
        raise HandshakeError(400, "the opening handshake must be a GET over HTTP/1.1")
    headers: list[tuple[bytes, bytes]] = []
    upgrade = connection = version = key = b""
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            raise HandshakeError(400, "malformed header line")
        name, value = name.strip().lower(), value.strip()
        name = _NAMES.get(name, name)
        headers.append((name, value))
        if name == b"upgrade":
            upgrade += b"," + value
        elif name == b"connection":
            connection += b"," + value
        elif name == b"sec-websocket-version":
            version = value
        elif name == b"sec-websocket-key":
            key = value
    if b"websocket" not in _tokens(upgrade):
        raise HandshakeError(400, "missing 'Upgrade: websocket'")
    if b"upgrade" not in _tokens(connection):
        raise HandshakeError(400, "missing 'Connection: upgrade'")
    if version != b"13":
        raise HandshakeError(426, "unsupported Sec-WebSocket-Version (13 is)")
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            raise ValueError(key)
    except (binascii.Error, ValueError):
        raise HandshakeError(400, "invalid Sec-WebSocket-Key") from None
    return Request(parts[1], headers)


def _tokens(value: bytes) -> set[bytes]:
    return {token.strip().lower() for token in value.split(b",")}


def accept_key(key: bytes) -> bytes:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key``."""
    return base64.b64encode(hashlib.sha1(key + _GUID).digest())


def http_response(
    status: int, headers: list[tuple[bytes, bytes]], body: bytes = b"", *, close: bool = True
) -> bytes:
    """An HTTP/1.1 response head (and body) as bytes; with ``close``, the headers a refusal
    needs (Date, Connection, Content-Length, Content-Type) are added where missing."""
    if close:
        present = {name.lower() for name, _ in headers}
        extra = [
            (b"date", formatdate(usegmt=True).encode("ascii")),
            (b"connection", b"close"),
            (b"content-length", str(len(body)).encode("ascii")),
            (b"content-type", b"text/plain; charset=utf-8"),
        ]
        headers = headers + [(name, value) for name, value in extra if name not in present]
    try:
        phrase = HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        phrase = b""
    lines = [b"HTTP/1.1 %d %s" % (status, phrase)]
    lines += [name + b": " + value for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def frame(first: int, payload: bytes) -> bytes:
    """A server frame (unmasked): ``first`` is FIN, RSV and opcode, e.g. 0x81 for a text."""
    size = len(payload)
    if size < 126:
        return bytes((first, size)) + payload
    if size < 65536:
        return _PACK_16(first, 126, size) + payload
    return _PACK_64(first, 127, size) + payload


def close_payload(code: int, reason: str = "") -> bytes:
    """A close frame's payload; 1005 ("no code") is sent as an empty payload. A reason over
    the 123 bytes a control frame leaves it is cut, at a character's boundary."""
    if code == 1005:
        return b""
    encoded = reason.encode("utf-8")
    if len(encoded) > 123:
        encoded = encoded[:123].decode("utf-8", "ignore").encode("utf-8")
    return code.to_bytes(2, "big") + encoded


def parse_close(payload: bytes) -> tuple[int, str]:
    """Code and reason of a received close frame; ``ValueError`` with the code to fail with
    (1002 a malformed frame or a code nobody may send, 1007 a reason that is not UTF-8)."""
    if not payload:
        return 1005, ""
    if len(payload) == 1:
        raise ValueError(1002)
    code = int.from_bytes(payload[:2], "big")
    if code not in _SENDABLE and not 3000 <= code < 5000:
        raise ValueError(1002)
    try:
        return code, payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(1007) from None
