"""Fixtures of the remote worker tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import RedisServer, RunningServer, start_server

from .helpers import WORKER_KEYS


@pytest.fixture
def gateways(redis_server: RedisServer) -> Iterator[tuple[RunningServer, RunningServer]]:
    """Two gateways on one Redis (the suite's own redis-server)."""
    redis_server.flush()
    settings = {
        "backbone": "redis",
        "redis_url": redis_server.url,
        "work_lease": 2.0,
        "keys": WORKER_KEYS,
        "heartbeat_interval": 0.5,
    }
    first = start_server(settings)
    second = start_server(settings)
    yield first, second
    first.stop()
    second.stop()
