"""The upstream client against a real OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import asyncio

import pytest

from skillwire.server._config import UpstreamConfig
from skillwire.server.llm import Upstream, UpstreamFailure
from skillwire.server.llm import _upstream as upstream_module
from tests.conftest import free_port, scaled

from .upstream import FakeUpstream, Plan, ToolCall


def _upstream(fake: FakeUpstream, key: str | None = None, **config: object) -> Upstream:
    return Upstream("fake", UpstreamConfig(base_url=fake.url, **config), key)  # type: ignore[arg-type]


async def _collect(client: Upstream, body: dict[str, object]) -> list[object]:
    try:
        return [chunk async for chunk in client.stream_chat(body)]
    finally:
        await client.aclose()


async def test_stream_reads_every_edge_case_chunk(upstream: FakeUpstream) -> None:
    """Role-only and empty deltas, split tool-call arguments and the usage chunk all parse."""
    upstream.plan(
        "alpha",
        Plan(
            pieces=["Hi"],
            tool_calls=[ToolCall("call_1", "add", ['{"a', '": 1', "}"])],
            finish_reason="tool_calls",
        ),
    )
    chunks = await _collect(_upstream(upstream), {"model": "alpha", "messages": [], "stream": True})
    deltas = [c.choices[0].delta for c in chunks if c.choices]  # type: ignore[attr-defined]
    assert deltas[0].role == "assistant"
    assert deltas[2].content == "Hi"
    arguments = "".join(
        d.tool_calls[0].function.arguments or "" for d in deltas if d and d.tool_calls
    )
    assert arguments == '{"a": 1}'
    assert chunks[-1].choices == []  # type: ignore[attr-defined]
    assert chunks[-1].usage.total_tokens == 12  # type: ignore[attr-defined]
    finish = [c.choices[0].finish_reason for c in chunks if c.choices]  # type: ignore[attr-defined]
    assert finish[-1] == "tool_calls"


async def test_429_carries_the_retry_after(upstream: FakeUpstream) -> None:
    """A 429 becomes a retryable failure with the upstream's Retry-After and message."""
    upstream.plan("alpha", Plan(status=429, headers={"Retry-After": "2"}, error="slow down"))
    with pytest.raises(UpstreamFailure) as caught:
        await _collect(_upstream(upstream), {"model": "alpha", "messages": [], "stream": True})
    assert caught.value.status == 429
    assert caught.value.retryable
    assert caught.value.retry_after == 2.0
    assert caught.value.message == "slow down"


async def test_500_is_not_retryable(upstream: FakeUpstream) -> None:
    """A 500 is a failure with its status and message, not to be retried."""
    upstream.plan("alpha", Plan(status=500, error="boom"))
    with pytest.raises(UpstreamFailure) as caught:
        await _collect(_upstream(upstream), {"model": "alpha", "messages": [], "stream": True})
    assert (caught.value.status, caught.value.message, caught.value.retryable) == (
        500,
        "boom",
        False,
    )


async def test_cut_mid_stream_is_status_200(upstream: FakeUpstream) -> None:
    """A connection cut after the 200 is a failure with status 200, after the chunks it sent."""
    upstream.plan("alpha", Plan(pieces=["a", "b", "c"], cut_after=2))
    client = _upstream(upstream)
    seen: list[str] = []
    with pytest.raises(UpstreamFailure) as caught:
        try:
            async for chunk in client.stream_chat(
                {"model": "alpha", "messages": [], "stream": True}
            ):
                seen.extend(c.delta.content or "" for c in chunk.choices if c.delta)
        finally:
            await client.aclose()
    assert caught.value.status == 200
    assert "".join(seen) == "ab"


async def test_missing_done_is_a_broken_stream(upstream: FakeUpstream) -> None:
    """A stream that ends without [DONE] is a failure with status 200."""
    upstream.plan("alpha", Plan(done=False))
    with pytest.raises(UpstreamFailure) as caught:
        await _collect(_upstream(upstream), {"model": "alpha", "messages": [], "stream": True})
    assert caught.value.status == 200


async def test_no_server_is_status_none() -> None:
    """Nothing listening: a failure whose status is None (the upstream never answered)."""
    client = Upstream("gone", UpstreamConfig(base_url=f"http://127.0.0.1:{free_port()}/v1"), None)
    with pytest.raises(UpstreamFailure) as caught:
        await _collect(client, {"model": "alpha", "messages": [], "stream": True})
    assert caught.value.status is None


async def test_requests_share_one_kept_alive_connection(upstream: FakeUpstream) -> None:
    """Sequential requests reuse one pooled connection (the same client port upstream)."""
    client = _upstream(upstream)
    before = len(upstream.requests)
    try:
        for _ in range(3):
            [
                c
                async for c in client.stream_chat(
                    {"model": "alpha", "messages": [], "stream": True}
                )
            ]
    finally:
        await client.aclose()
    ports = {seen.port for seen in upstream.requests[before:]}
    assert len(ports) == 1


async def test_api_key_goes_as_bearer(upstream: FakeUpstream) -> None:
    """The configured key is sent as Authorization: Bearer."""
    await _collect(_upstream(upstream, "sk-up"), {"model": "alpha", "messages": [], "stream": True})
    assert upstream.requests[-1].headers["authorization"] == "Bearer sk-up"


async def test_list_models(upstream: FakeUpstream) -> None:
    """GET /models gives the ids the upstream lists."""
    client = _upstream(upstream)
    try:
        assert await client.list_models() == ["alpha", "beta", "gamma"]
    finally:
        await client.aclose()


async def test_concurrent_streams_spread_over_small_pools(
    upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Streams past one pool's size open another pool, up to max_connections in all."""
    monkeypatch.setattr(upstream_module, "POOL_SIZE", 2)
    for _ in range(5):
        upstream.plan("alpha", Plan(pieces=["a", "b"], delay=scaled(0.3)))
    client = _upstream(upstream, max_connections=5)
    try:
        body = {"model": "alpha", "messages": [], "stream": True}
        texts = await asyncio.gather(*(_text(client, body) for _ in range(5)))
        pools = client._pools[asyncio.get_running_loop()]
        assert [pool.size for pool in pools] == [2, 2, 1]
        assert all(pool.active == 0 for pool in pools)
    finally:
        await client.aclose()
    assert texts == ["ab"] * 5
    assert len({seen.port for seen in upstream.requests[-5:]}) == 5


async def _text(client: Upstream, body: dict[str, object]) -> str:
    return "".join(
        [
            c.delta.content or ""
            async for chunk in client.stream_chat(body)
            for c in chunk.choices
            if c.delta
        ]
    )
