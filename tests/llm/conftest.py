"""Fixtures of the LLM bridge tests: the fake upstream, and servers configured to use it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import RunningServer

from .upstream import FakeUpstream, running_upstream


@pytest.fixture(scope="module")
def upstream_server() -> Iterator[FakeUpstream]:
    """One fake OpenAI-compatible upstream for the module, serving alpha, beta and gamma."""
    yield from running_upstream(("alpha", "beta", "gamma"))


@pytest.fixture
def upstream(upstream_server: FakeUpstream) -> Iterator[FakeUpstream]:
    """The module's fake upstream; plans a test queued and did not use are dropped after it."""
    yield upstream_server
    upstream_server.plans.clear()


def llm_settings(upstream: FakeUpstream, **more: Any) -> dict[str, Any]:
    """Config overrides naming the fake upstream ``fake`` (alpha, beta) and ``wild`` (``*``)."""
    return {
        "llm": {
            "upstreams": {
                "fake": {
                    "base_url": upstream.url,
                    "models": ["alpha", "beta"],
                    "timeout": 30,
                    "max_retries": 2,
                    **more,
                },
                "wild": {"base_url": upstream.url, "models": ["*"], "timeout": 30},
            }
        }
    }


@pytest.fixture
def llm_server(
    server_factory: Callable[..., RunningServer], upstream: FakeUpstream
) -> RunningServer:
    """A skillwire server (this test's backbone) whose LLM bridge uses the fake upstream."""
    return server_factory({"heartbeat_interval": 0.5, **llm_settings(upstream)})
