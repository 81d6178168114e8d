"""httpx's transport on a plain asyncio connection, for upstreams reached over ``http://``.

httpcore's default network layer is anyio: every read opens a cancel scope for its timeout
(``fail_after``) and yields to the event loop once more, which under a token stream (one read
per token) costs the gateway more CPU than parsing the HTTP. This network backend reads from an
``asyncio.Protocol``'s buffer and times a read out with one timer. httpx and httpcore still do
the HTTP (pooling, keep-alive, h11); only the socket layer changes, and only for plain TCP:
``https://`` upstreams keep httpx's own transport (TLS stays anyio's).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, cast

import httpcore
import httpx

from .._pool_transport import PoolTransport

__all__ = ["asyncio_transport"]

READ_PAUSE = 256 * 1024  # bytes buffered unread before the socket stops being read


class _Protocol(asyncio.Protocol):
    """What the connection received and not yet read, and who waits for it."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.received: list[bytes] = []
        self.size = 0
        self.closed = False  # the peer closed or the connection broke
        self.error: Exception | None = None
        self.reading: asyncio.Future[None] | None = None
        self.draining: asyncio.Future[None] | None = None
        self.paused_reading = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        self.received.append(data)
        self.size += len(data)
        if self.size > READ_PAUSE and self.transport is not None:
            self.transport.pause_reading()
            self.paused_reading = True
        self._wake_reader()

    def eof_received(self) -> bool:
        self.closed = True
        self._wake_reader()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.error = exc
        self._wake_reader()
        if self.draining is not None and not self.draining.done():
            self.draining.set_result(None)

    def pause_writing(self) -> None:
        self.draining = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self.draining is not None and not self.draining.done():
            self.draining.set_result(None)
        self.draining = None

    def _wake_reader(self) -> None:
        if self.reading is not None and not self.reading.done():
            self.reading.set_result(None)


async def _wait(
    future: asyncio.Future[None], timeout: float | None, error: type[Exception]
) -> None:
    """Await ``future``; after ``timeout`` seconds it fails with ``error`` (one timer)."""
    if timeout is None:
        await future
        return
    timer = asyncio.get_running_loop().call_later(timeout, _expire, future, error, timeout)
    try:
        await future
    finally:
        timer.cancel()


def _expire(future: asyncio.Future[None], error: type[Exception], timeout: float) -> None:
    if not future.done():
        future.set_exception(error(f"no progress in {timeout:g} s"))


class _Stream(httpcore.AsyncNetworkStream):
    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        protocol = self._protocol
        if not protocol.received and not protocol.closed:
            protocol.reading = asyncio.get_running_loop().create_future()
            await _wait(protocol.reading, timeout, httpcore.ReadTimeout)
        if protocol.received:
            data = (
                protocol.received[0] if len(protocol.received) == 1 else b"".join(protocol.received)
            )
            if len(data) > max_bytes:
                data, rest = data[:max_bytes], data[max_bytes:]
                protocol.received = [rest]
                protocol.size = len(rest)
            else:
                protocol.received = []
                protocol.size = 0
            if protocol.paused_reading and protocol.size <= READ_PAUSE:
                protocol.paused_reading = False
                self._transport.resume_reading()
            return data
        if protocol.error is not None:
            raise httpcore.ReadError(str(protocol.error) or type(protocol.error).__name__)
        return b""  # the peer closed: httpcore reads this as the end

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        if self._protocol.closed or self._transport.is_closing():
            raise httpcore.WriteError("the connection is closed")
        self._transport.write(buffer)
        draining = self._protocol.draining
        if draining is not None:
            await _wait(draining, timeout, httpcore.WriteTimeout)

    async def aclose(self) -> None:
        self._transport.close()

    async def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("TLS goes through httpx's own transport, not this one")

    def get_extra_info(self, info: str) -> Any:
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        if info == "socket":
            return self._transport.get_extra_info("socket")
        if info == "is_readable":  # an idle kept-alive connection the peer closed (or spoke on)
            return bool(self._protocol.received) or self._protocol.closed
        return None


class _Backend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport, protocol = await loop.create_connection(
                    _Protocol, host, port, local_addr=(local_address, 0) if local_address else None
                )
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"no connection in {timeout:g} s") from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        sock = transport.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return _Stream(transport, protocol)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def asyncio_transport(limits: httpx.Limits) -> PoolTransport:
    """httpx's transport whose connections are plain asyncio ones (``http://`` only)."""
    return PoolTransport(
        _Backend(),
        max_connections=limits.max_connections or 100,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry or 5.0,
    )
