"""One OpenAI-compatible upstream: a pooled, kept-alive HTTP client and its Chat Completions stream.

httpx (its event stream split by ``_sse.py``) rather than the ``openai`` SDK: the SDK builds a
pydantic object per chunk and retries on its own, where the bridge needs each chunk's few fields
at the least CPU per token (msgspec decodes them straight into Structs), the upstream's
``Retry-After`` to queue the request (``request.queued``) instead of sleeping inside a library,
and one place where every foreign error becomes an ``UpstreamFailure``.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import httpx
import msgspec

from .._config import UpstreamConfig
from ._sse import SseDataSplitter
from ._transport import asyncio_transport

__all__ = [
    "Chunk",
    "ChunkChoice",
    "ChunkDelta",
    "ToolCallDelta",
    "Upstream",
    "UpstreamFailure",
    "Usage",
]

RETRYABLE = frozenset({429, 503})
POOL_SIZE = 32  # connections per httpx pool (see Upstream)
MAX_ERROR_BODY = 64 * 1024


class UpstreamFailure(Exception):
    """The upstream refused, failed or broke: what UPSTREAM_ERROR's details say.

    ``status`` is the HTTP status it answered (200 when its stream broke mid-way), or None when
    it never answered; ``retry_after`` is the delay it asked for on a 429/503 (seconds).
    """

    def __init__(self, message: str, status: int | None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.status in RETRYABLE


class FunctionDelta(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(msgspec.Struct):
    index: int = 0
    id: str | None = None
    type: str | None = None
    function: FunctionDelta | None = None


class ChunkDelta(msgspec.Struct):
    role: str | None = None
    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class ChunkChoice(msgspec.Struct):
    index: int = 0
    delta: ChunkDelta | None = None
    finish_reason: str | None = None


class Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class Chunk(msgspec.Struct):
    """The fields of a ``chat.completion.chunk`` the bridge reads; the rest is ignored."""

    choices: list[ChunkChoice] = []
    usage: Usage | None = None
    model: str | None = None
    error: Any = None  # some servers report a failure inside the stream


_chunk = msgspec.json.Decoder(Chunk)
_any = msgspec.json.Decoder()


def retry_after(headers: httpx.Headers) -> float | None:
    """Seconds from ``Retry-After`` (a number or an HTTP date) or ``retry-after-ms``."""
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(float(ms) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def error_message(body: bytes, status: int) -> str:
    """The upstream's own message (OpenAI's ``{"error": {"message"}}`` and its variants)."""
    try:
        data = _any.decode(body)
    except msgspec.DecodeError:
        text = body.decode("utf-8", "replace").strip()
        return text[:500] or f"the upstream answered {status}"
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if isinstance(data.get("message"), str):
            return str(data["message"])
        if isinstance(data.get("detail"), str):
            return str(data["detail"])
    return f"the upstream answered {status}"


class Upstream:
    """One configured upstream. Its HTTP clients are made when needed in each event loop.

    Its connections are split over pools of at most ``POOL_SIZE`` (one ``httpx.AsyncClient``
    each): httpcore's pool looks at every one of its connections each time a request starts or
    ends, so one pool of hundreds of streams costs more CPU per request than the streams cost.
    A request goes to the first pool with room, so a lone client keeps reusing one connection.
    """

    def __init__(self, name: str, config: UpstreamConfig, api_key: str | None) -> None:
        self.name = name
        self.config = config
        self.base_url = config.base_url.rstrip("/")
        self._headers = {"Accept": "text/event-stream"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._pools: dict[asyncio.AbstractEventLoop, list[_Pool]] = {}

    @property
    def wildcard(self) -> bool:
        return "*" in self.config.models

    def client(self) -> httpx.AsyncClient:
        """This loop's first client (the one a request uses when the upstream is not busy)."""
        return self._pool().client

    def _pool(self) -> _Pool:
        """The first pool with room (made when all before it are full), else the least busy."""
        pools = self._pools.setdefault(asyncio.get_running_loop(), [])
        for pool in pools:
            if pool.active < pool.size:
                return pool
        made = len(pools) * POOL_SIZE
        if made < self.config.max_connections:
            pool = self._new_pool(min(POOL_SIZE, self.config.max_connections - made))
            pools.append(pool)
            return pool
        return min(pools, key=lambda p: p.active - p.size)  # all full: httpx queues the request

    def _new_pool(self, size: int) -> _Pool:
        timeout = httpx.Timeout(self.config.timeout, connect=self.config.connect_timeout)
        limits = httpx.Limits(
            max_connections=size, max_keepalive_connections=size, keepalive_expiry=60.0
        )
        # Plain TCP on asyncio's own streams (_transport.py); TLS stays httpx's.
        transport = asyncio_transport(limits) if self.base_url.startswith("http://") else None
        client = httpx.AsyncClient(
            timeout=timeout,
            limits=limits,
            headers=self._headers,
            trust_env=False,
            transport=transport,
        )
        return _Pool(client, size)

    async def aclose(self) -> None:
        """Close this loop's clients (others belong to loops that are gone or closing)."""
        for pool in self._pools.pop(asyncio.get_running_loop(), []):
            await pool.client.aclose()

    async def list_models(self) -> list[str]:
        """The ids the upstream's ``GET /models`` lists."""
        try:
            response = await self.client().get(f"{self.base_url}/models")
        except httpx.HTTPError as exc:
            raise UpstreamFailure(f"GET /models failed: {_describe(exc)}", None) from exc
        if response.status_code != 200:
            raise UpstreamFailure(
                error_message(response.content, response.status_code), response.status_code
            )
        try:
            data = _any.decode(response.content)
            return [str(item["id"]) for item in data["data"]]
        except (msgspec.DecodeError, KeyError, TypeError) as exc:
            raise UpstreamFailure("GET /models answered no model list", 200) from exc

    async def stream_chat(self, body: dict[str, Any]) -> AsyncGenerator[Chunk, None]:
        """POST ``/chat/completions`` with ``stream: true``; yield each chunk until ``[DONE]``."""
        async with aclosing(self.stream_batches(body)) as batches:
            async for batch in batches:
                for chunk in batch:
                    yield chunk

    async def stream_batches(self, body: dict[str, Any]) -> AsyncGenerator[list[Chunk], None]:
        """The chunks of ``stream_chat``, each time as many as have arrived (at least one).

        A reader task reads the response and decodes its chunks as they arrive; each step of
        the caller takes all it has not taken yet, so when the caller falls behind (a busy
        gateway) it handles a run of chunks at once, and when it keeps up, each chunk at once:
        nothing waits for more. Leaving early (a cancel) stops the reader and closes the
        response, and with it the connection. A failure comes after the chunks before it.
        """
        feed = _Feed()
        reader = asyncio.create_task(self._read(body, feed))
        try:
            while True:
                if not feed.chunks and not feed.finished:
                    feed.ready.clear()
                    await feed.ready.wait()
                if feed.chunks:
                    batch, feed.chunks = feed.chunks, []
                    yield batch
                elif feed.finished:
                    if feed.failure is not None:
                        raise feed.failure
                    return
        finally:
            if not reader.done():
                reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _read(self, body: dict[str, Any], feed: _Feed) -> None:
        """The reader task of ``stream_batches``: the response's chunks into ``feed``."""
        began = False  # the upstream answered 200: a failure from now on is a broken stream
        pool = self._pool()
        pool.active += 1
        try:
            async with pool.client.stream(
                "POST", f"{self.base_url}/chat/completions", json=body
            ) as response:
                if response.status_code != 200:
                    content = await _read_bounded(response)
                    raise UpstreamFailure(
                        error_message(content, response.status_code),
                        response.status_code,
                        retry_after(response.headers),
                    )
                began = True
                kind = response.headers.get("content-type", "")
                if "text/event-stream" not in kind:
                    raise UpstreamFailure(f"not an event stream: the content type is {kind!r}", 200)
                splitter = SseDataSplitter()
                chunks = feed.chunks
                done = False
                async for piece in response.aiter_bytes():
                    if done:
                        continue  # read to the end of the body: the connection stays reusable
                    for data in splitter.feed(piece):
                        if done or not data:
                            continue
                        if data == b"[DONE]":
                            done = True
                            continue
                        try:
                            chunk = _chunk.decode(data)
                        except msgspec.DecodeError as exc:
                            raise UpstreamFailure(f"an unreadable chunk: {exc}", 200) from exc
                        if chunk.error is not None:
                            raise UpstreamFailure(_stream_error(chunk.error), 200)
                        if feed.chunks is not chunks:  # the consumer took the last ones
                            chunks = feed.chunks
                        chunks.append(chunk)
                        feed.ready.set()
                if not done:
                    raise UpstreamFailure("the stream ended before [DONE]", 200)
        except httpx.HTTPError as exc:
            feed.failure = UpstreamFailure(_describe(exc), 200 if began else None)
        except UpstreamFailure as exc:
            feed.failure = exc
        except Exception as exc:  # a bug: the caller raises it rather than end quietly
            feed.failure = exc
        finally:
            pool.active -= 1
            feed.finished = True
            feed.ready.set()


class _Pool:
    """One httpx client of an upstream, its connection limit and the requests it carries."""

    __slots__ = ("active", "client", "size")

    def __init__(self, client: httpx.AsyncClient, size: int) -> None:
        self.client = client
        self.size = size
        self.active = 0


class _Feed:
    """What the reader task of ``stream_batches`` has read and its caller not taken yet."""

    __slots__ = ("chunks", "failure", "finished", "ready")

    def __init__(self) -> None:
        self.chunks: list[Chunk] = []
        self.failure: Exception | None = None
        self.finished = False
        self.ready = asyncio.Event()


async def _read_bounded(response: httpx.Response) -> bytes:
    body = bytearray()
    async for part in response.aiter_bytes():
        body += part
        if len(body) > MAX_ERROR_BODY:
            break
    return bytes(body[:MAX_ERROR_BODY])


def _stream_error(error: Any) -> str:
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    return str(error)


def _describe(exc: httpx.HTTPError) -> str:
    kind = type(exc).__name__
    text = str(exc)
    return f"{kind}: {text}" if text else kind
