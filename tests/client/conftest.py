"""Fixtures for the client tests: one server per module, clients with fast reconnects."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from skillwire.client import AsyncClient, Backoff, Client
from tests.conftest import ADMIN_KEY, RunningServer, scaled, start_server

FAST = Backoff(initial=0.02, maximum=0.2)


def client_options(**overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "api_key": ADMIN_KEY,
        "timeout": scaled(10),
        "backoff": FAST,
        "heartbeat_interval": 0.5,
        "poll_wait": scaled(10),
    }
    options.update(overrides)
    return options


@pytest.fixture(scope="module")
def shared_server() -> Iterator[RunningServer]:
    """One server for a module's tests (they only create and read their own tasks)."""
    running = start_server({"heartbeat_interval": 0.5, "rate_limit": "0"})
    yield running
    running.stop()


@pytest.fixture
async def client(shared_server: RunningServer) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(shared_server.url, **client_options()) as client:
        yield client


@pytest.fixture
def sync_client(shared_server: RunningServer) -> Iterator[Client]:
    with Client(shared_server.url, **client_options()) as client:
        yield client
