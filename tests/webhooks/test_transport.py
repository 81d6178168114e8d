"""The webhook HTTP client (``_transport.py``): httpx's public transport over the guard."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from skillwire.server._pool_transport import PoolTransport
from skillwire.server.webhooks import UnsafeUrl, UrlGuard
from skillwire.server.webhooks._transport import make_client
from tests.conftest import free_port, scaled

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    body = await reader.readexactly(length)
    reply = b"got " + body
    writer.write(b"HTTP/1.1 201 Created\r\ncontent-length: %d\r\n\r\n%s" % (len(reply), reply))
    await writer.drain()


async def _never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()  # until the client gives up and closes


@contextlib.asynccontextmanager
async def _serve(handler: Handler) -> AsyncIterator[str]:
    """A one-route HTTP receiver on a free port; every connection is done when it exits."""
    handlers: set[asyncio.Task[None]] = set()

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            await handler(reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    server = await asyncio.start_server(run, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        server.close()
        await server.wait_closed()
        async with asyncio.timeout(scaled(5)):
            await asyncio.gather(*handlers, return_exceptions=True)


def _client(*, allow_private: bool = True, timeout: float = 5.0) -> httpx.AsyncClient:
    guard = UrlGuard(allow_private=allow_private, allow_hosts=[])
    return make_client(guard, timeout=scaled(timeout), connect_timeout=scaled(5), max_connections=4)


def test_the_transport_uses_only_httpx_public_interface() -> None:
    """The transport implements httpx.AsyncBaseTransport; it does not subclass httpx's own
    transport to overwrite its private pool."""
    assert issubclass(PoolTransport, httpx.AsyncBaseTransport)
    assert not issubclass(PoolTransport, httpx.AsyncHTTPTransport)


async def test_posts_and_reads_the_answer() -> None:
    """A POST goes out through the guard; status and body come back."""
    async with _serve(_answer) as url:
        async with _client() as client:
            response = await client.post(url, content=b"payload")
            assert response.status_code == 201
            assert response.content == b"got payload"


async def test_a_refused_connection_is_httpx_connect_error() -> None:
    """Nobody listening: httpx.ConnectError, as the dispatcher expects (not httpcore's)."""
    async with _client() as client:
        with pytest.raises(httpx.ConnectError):
            await client.post(f"http://127.0.0.1:{free_port()}/hook", content=b"x")


async def test_a_silent_receiver_is_an_httpx_read_timeout() -> None:
    """A receiver that never answers: httpx.ReadTimeout after the client's timeout."""
    async with _serve(_never_answer) as url:
        async with _client(timeout=0.3) as client:
            with pytest.raises(httpx.ReadTimeout):
                await client.post(url, content=b"x")


async def test_a_private_address_is_refused_before_connecting() -> None:
    """With private addresses not allowed, the guard refuses 127.0.0.1 (UnsafeUrl as is)."""
    async with _serve(_answer) as url:
        async with _client(allow_private=False) as client:
            with pytest.raises(UnsafeUrl):
                await client.post(url, content=b"x")
