"""Connection limits: header time, header size, idle keep-alive and the connection cap."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator

import pytest
from websockets.sync.client import connect

from tests.conftest import ADMIN_KEY, RunningServer, scaled, start_server


@pytest.fixture
def limited() -> Iterator[RunningServer]:
    """A server with short timeouts and a cap of 8 connections."""
    running = start_server({"header_timeout": 0.5, "keepalive_timeout": 0.5, "max_connections": 8})
    yield running
    running.stop()


def _connect(running: RunningServer) -> socket.socket:
    host, port = running.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=scaled(10))
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (within the socket timeout)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def _status_and_body(response: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def _closed_within(sock: socket.socket, seconds: float) -> float:
    """Seconds until the server closed ``sock`` (reading nothing), failing after ``seconds``."""
    started = time.monotonic()
    sock.settimeout(scaled(seconds))
    assert sock.recv(65536) == b""
    return time.monotonic() - started


def test_headers_over_64_kib_get_431_in_the_error_envelope() -> None:
    """A request with more than 64 KiB of headers is answered 431 HEADERS_TOO_LARGE."""
    running = start_server()
    try:
        with _connect(running) as sock:
            sock.sendall(
                b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n"
            )
            status, body = _status_and_body(_read_until_closed(sock))
        assert status == 431
        assert body["error"]["code"] == "HEADERS_TOO_LARGE"  # type: ignore[index]
    finally:
        running.stop()


def test_431_on_the_openai_front_door_carries_openai_fields() -> None:
    """A 431 to a /v1/ request adds OpenAI's type and param, as every error there does."""
    running = start_server()
    try:
        with _connect(running) as sock:
            sock.sendall(
                b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n"
            )
            status, body = _status_and_body(_read_until_closed(sock))
        assert status == 431
        error = body["error"]
        assert isinstance(error, dict) and error["code"] == "HEADERS_TOO_LARGE"
        assert error["type"] == "invalid_request_error" and error["param"] is None
    finally:
        running.stop()


def test_a_huge_header_is_refused_before_it_is_read_whole() -> None:
    """A 100 MB header is cut off after about the limit: the server answers 431 and closes."""
    running = start_server()
    try:
        with _connect(running) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
            sent = 0
            chunk = b"a" * 65536
            try:
                while sent < 100_000_000:  # bounded: stops at the first refused send
                    sock.sendall(chunk)
                    sent += len(chunk)
            except OSError:
                pass
            response = _read_until_closed(sock)
        assert sent < 10_000_000
        assert _status_and_body(response)[0] == 431
    finally:
        running.stop()


def test_headers_of_normal_size_are_served(limited: RunningServer) -> None:
    """Headers under the limit (60 KiB) are served as usual."""
    with _connect(limited) as sock:
        sock.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: "
            + b"a" * 60_000
            + b"\r\n\r\n"
        )
        assert _read_until_closed(sock).startswith(b"HTTP/1.1 200")


def test_a_silent_connection_is_closed_after_the_header_timeout(limited: RunningServer) -> None:
    """A connection that sends nothing is closed once header_timeout (0.5 s) has passed."""
    with _connect(limited) as sock:
        assert _closed_within(sock, 5) >= 0.4


def test_dripping_headers_are_cut_at_the_header_timeout(limited: RunningServer) -> None:
    """Headers that arrive a byte at a time are cut off at header_timeout, not kept open."""
    with _connect(limited) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        started = time.monotonic()
        try:
            for _ in range(100):  # bounded: 10 s of dripping at most
                sock.sendall(b"X")
                time.sleep(0.1)
        except OSError:
            pass
        assert time.monotonic() - started < scaled(5)
        assert sock.recv(65536) == b""


def test_an_idle_kept_alive_connection_closes_after_the_keepalive_timeout(
    limited: RunningServer,
) -> None:
    """After a response, a connection left idle is closed after keepalive_timeout."""
    with _connect(limited) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        response = b""
        while not response.endswith(b'{"status":"ok"}'):  # the body may come in its own packet
            response += sock.recv(65536)
        assert response.startswith(b"HTTP/1.1 200")
        assert _closed_within(sock, 3) >= 0.4


def test_connections_over_the_cap_get_503_and_the_server_recovers(limited: RunningServer) -> None:
    """Past max_connections a request gets 503 in the envelope; once they close, 200 again."""
    idle = [_connect(limited) for _ in range(8)]
    try:
        with _connect(limited) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            status, body = _status_and_body(_read_until_closed(sock))
        assert status == 503
        assert body["error"]["code"] == "SERVICE_UNAVAILABLE"  # type: ignore[index]
    finally:
        for sock in idle:
            sock.close()
    deadline = time.monotonic() + scaled(5)
    while True:
        with _connect(limited) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if _read_until_closed(sock).startswith(b"HTTP/1.1 200"):
                break
        assert time.monotonic() < deadline, "the server did not recover"


def test_open_websockets_count_towards_the_cap_until_they_close(limited: RunningServer) -> None:
    """A WebSocket handed over by the HTTP protocol is still a connection for max_connections."""
    with contextlib.ExitStack() as opened:
        for _ in range(8):
            opened.enter_context(
                connect(
                    limited.ws_url + "/api/v1/ws",
                    subprotocols=["skillwire.v1"],  # type: ignore[list-item]
                    additional_headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                )
            )
        with _connect(limited) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _status_and_body(_read_until_closed(sock))[0] == 503
    deadline = time.monotonic() + scaled(5)
    while True:
        with _connect(limited) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if _read_until_closed(sock).startswith(b"HTTP/1.1 200"):
                break
        assert time.monotonic() < deadline, "closed WebSockets were still counted"


def _ws_extensions(running: RunningServer) -> str | None:
    """The Sec-WebSocket-Extensions the server answered a client offering permessage-deflate."""
    with connect(
        running.url.replace("http", "ws") + "/api/v1/ws",
        subprotocols=["skillwire.v1"],  # type: ignore[list-item]
        additional_headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    ) as conn:
        assert conn.response is not None
        extensions: str | None = conn.response.headers.get("Sec-WebSocket-Extensions")
        return extensions


def test_websockets_are_not_compressed_by_default() -> None:
    """The server declines permessage-deflate (zlib state per connection) unless configured."""
    running = start_server()
    try:
        assert _ws_extensions(running) is None
    finally:
        running.stop()


def test_ws_compression_turns_permessage_deflate_on() -> None:
    """ws_compression = true accepts a client's permessage-deflate offer."""
    running = start_server({"ws_compression": True})
    try:
        assert "permessage-deflate" in (_ws_extensions(running) or "")
    finally:
        running.stop()
