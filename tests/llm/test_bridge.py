"""Which upstream serves a model: ``<upstream>/<model>``, bare names, ``["*"]`` upstreams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from skillwire.protocol import NotFound, ValidationError
from skillwire.server import load_config
from skillwire.server.llm import LlmBridge
from tests.conftest import scaled

from .conftest import llm_settings
from .upstream import FakeUpstream


@pytest.fixture
async def bridge(upstream: FakeUpstream) -> AsyncIterator[LlmBridge]:
    """A bridge on the fake upstream: ``fake`` (alpha, beta) and ``wild`` (``*``)."""
    config = load_config(environ={}, overrides=llm_settings(upstream))
    made = LlmBridge(config.llm)
    yield made
    await made.aclose()


async def test_prefixed_names_route_to_their_upstream(bridge: LlmBridge) -> None:
    """``fake/alpha`` is alpha on fake; ``wild/gamma`` comes from wild's /models."""
    assert (await bridge.resolve("fake/alpha")).name == "fake/alpha"
    route = await bridge.resolve("wild/gamma")
    assert (route.upstream.name, route.model) == ("wild", "gamma")


async def test_unknown_and_ambiguous_names(bridge: LlmBridge) -> None:
    """A model nobody serves is NotFound; one two upstreams serve must be prefixed."""
    with pytest.raises(NotFound):
        await bridge.resolve("fake/gamma")
    with pytest.raises(NotFound):
        await bridge.resolve("omega")
    with pytest.raises(ValidationError, match="fake/alpha"):
        await bridge.resolve("alpha")


async def test_a_cancelled_lookup_leaves_the_list_to_others(
    bridge: LlmBridge, upstream: FakeUpstream
) -> None:
    """Two lookups share one slow GET /models; cancelling the first does not strand the second."""
    upstream.models_delay = 0.3
    try:
        first = asyncio.create_task(bridge.resolve("gamma"))
        second = asyncio.create_task(bridge.resolve("gamma"))
        await asyncio.sleep(0.05)
        first.cancel()
        async with asyncio.timeout(scaled(5)):
            route = await second
        assert route.name == "wild/gamma"
    finally:
        upstream.models_delay = 0.0
