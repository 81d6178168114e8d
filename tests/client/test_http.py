"""The REST transport's retry rule: send again only when nothing can happen twice."""

from __future__ import annotations

import pytest

from skillwire.client import (
    AsyncClient,
    Backoff,
    NotFound,
    RateLimited,
    ServiceUnavailable,
    TransportError,
    TransportTimeout,
)
from skillwire.client._http import HttpTransport
from skillwire.client._settings import Settings
from tests.client.conftest import client_options
from tests.client.helpers import TcpProxy
from tests.conftest import RunningServer

NO_JITTER = Backoff(initial=0.5, jitter=0.0)


@pytest.fixture
async def transport() -> HttpTransport:
    http = HttpTransport(Settings(base_url="http://127.0.0.1:1", retries=2, backoff=NO_JITTER))
    await http.aclose()
    return http


def test_connection_never_made_is_always_retried(transport: HttpTransport) -> None:
    """A request that never reached the server is retried, whatever its method."""
    error = TransportError("refused", connected=False)
    assert transport._retry_delay(error, 0, idempotent=False) == 0.5
    assert transport._retry_delay(error, 1, idempotent=False) == 1.0
    assert transport._retry_delay(error, 2, idempotent=False) is None  # retries used up


def test_dropped_request_is_retried_only_when_idempotent(transport: HttpTransport) -> None:
    """A request that may have arrived is retried only when idempotent."""
    error = TransportTimeout("read timeout")
    assert transport._retry_delay(error, 0, idempotent=True) == 0.5
    assert transport._retry_delay(error, 0, idempotent=False) is None


def test_refusals_before_acting_are_retried(transport: HttpTransport) -> None:
    """429 waits its Retry-After; 503 backs off; final errors are not retried."""
    limited = RateLimited("slow", details={"retry_after": 2.5})
    assert transport._retry_delay(limited, 0, idempotent=False) == 2.5
    assert transport._retry_delay(RateLimited("slow"), 0, idempotent=False) == 0.5
    assert transport._retry_delay(ServiceUnavailable(), 0, idempotent=False) == 0.5
    assert transport._retry_delay(NotFound(), 0, idempotent=True) is None


async def test_retry_recovers_from_a_dropped_connection(shared_server: RunningServer) -> None:
    """A GET and a POST (with its generated Idempotency-Key) survive one cut connection."""
    port = int(shared_server.url.rsplit(":", 1)[1])
    async with TcpProxy(port) as proxy:
        proxy.refuse = 1  # the first connection is accepted, then dropped
        options = client_options(retries=2, backoff=Backoff(initial=0.01, jitter=0.0))
        async with AsyncClient(proxy.url, **options) as client:
            task = await client.call("demo", "echo", [{"text": "retried"}], wait=5)
            assert task.previews == [{"type": "text", "text": "retried"}]
            assert proxy.accepted == 2
            proxy.cut()  # the pooled connection dies, and so will the next one
            proxy.refuse = 1
            listed = await client.tasks(limit=1000)
            assert proxy.accepted >= 3
            assert proxy.refuse == 0
            assert sum(t.task_id == task.task_id for t in listed.items) == 1


async def test_no_retries_means_one_attempt(shared_server: RunningServer) -> None:
    """retries=0 raises the first TransportError."""
    port = int(shared_server.url.rsplit(":", 1)[1])
    async with TcpProxy(port) as proxy:
        proxy.refuse = 1
        async with AsyncClient(proxy.url, **client_options(retries=0)) as client:
            with pytest.raises(TransportError):
                await client.apps()
        assert proxy.accepted == 1
