"""The asyncio network layer under httpx for http:// upstreams (_transport.py)."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from skillwire.server._config import UpstreamConfig
from skillwire.server._pool_transport import PoolTransport
from skillwire.server.llm import Upstream, UpstreamFailure
from skillwire.server.llm._transport import _Backend
from tests.conftest import scaled

from .upstream import FakeUpstream, Plan

BODY = {"model": "alpha", "messages": [], "stream": True}


def _upstream(fake: FakeUpstream, **config: object) -> Upstream:
    return Upstream("fake", UpstreamConfig(base_url=fake.url, **config), None)  # type: ignore[arg-type]


async def _text(client: Upstream) -> str:
    try:
        return "".join(
            [
                c.delta.content or ""
                async for chunk in client.stream_chat(BODY)
                for c in chunk.choices
                if c.delta
            ]
        )
    finally:
        await client.aclose()


async def test_http_upstreams_use_the_asyncio_transport(upstream: FakeUpstream) -> None:
    """An http:// upstream's client runs on the asyncio network backend (through httpx's public
    transport interface, not its private pool) and streams the whole answer."""
    upstream.plan("alpha", Plan())
    client = _upstream(upstream)
    transport = client.client()._transport
    assert isinstance(transport, PoolTransport)
    assert isinstance(transport._pool._network_backend, _Backend)
    assert await _text(client) == "Hello, world"


def test_streams_on_uvloop(upstream: FakeUpstream) -> None:
    """On uvloop (what `skillwire serve` runs), whose transports are not asyncio's classes."""
    upstream.plan("alpha", Plan())
    assert uvloop.run(_text(_upstream(upstream))) == "Hello, world"


async def test_a_silent_upstream_times_out_as_a_broken_stream(upstream: FakeUpstream) -> None:
    """No byte for `timeout` seconds after the 200: a ReadTimeout failure with status 200."""
    upstream.plan("alpha", Plan(first_delay=scaled(5)))
    client = _upstream(upstream, timeout=0.3)
    started = asyncio.get_running_loop().time()
    with pytest.raises(UpstreamFailure) as caught:
        await _text(client)
    assert caught.value.status == 200
    assert caught.value.message.startswith("ReadTimeout")
    assert asyncio.get_running_loop().time() - started < scaled(3)


async def test_sequential_requests_reuse_the_connection(upstream: FakeUpstream) -> None:
    """After an answer the connection goes back to the pool and the next request reuses it."""
    client = _upstream(upstream)
    try:
        for _ in range(3):
            [c async for c in client.stream_chat(BODY)]
    finally:
        await client.aclose()
    assert len({seen.port for seen in upstream.requests[-3:]}) == 1
