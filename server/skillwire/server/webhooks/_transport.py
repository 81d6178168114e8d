"""The HTTP client deliveries go out on: httpx over a network backend that asks the guard.

httpcore opens every connection through its network backend's ``connect_tcp(host, port)``;
this one resolves the host through ``UrlGuard.resolve`` and connects to the checked addresses
only, while TLS still verifies (and SNI still names) the host. Redirects are not followed,
proxies from the environment are not used, and nothing is retried here: the dispatcher's
schedule does that.
"""

from __future__ import annotations

from collections.abc import Iterable

import httpcore
import httpx

from .._pool_transport import PoolTransport
from ._ssrf import Unresolvable, UrlGuard

__all__ = ["GuardedBackend", "make_client"]

USER_AGENT = "skillwire-webhooks/1"


class GuardedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, guard: UrlGuard) -> None:
        self._guard = guard
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self._guard.resolve(host, port)  # UnsafeUrl propagates as is
        except Unresolvable as exc:
            raise httpcore.ConnectError(str(exc)) from None
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks are never sent over a unix socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def make_client(
    guard: UrlGuard, *, timeout: float, connect_timeout: float, max_connections: int
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=PoolTransport(GuardedBackend(guard), max_connections=max_connections),
        timeout=httpx.Timeout(timeout, connect=min(connect_timeout, timeout)),
        follow_redirects=False,
        trust_env=False,
        headers={"user-agent": USER_AGENT, "accept-encoding": "identity"},
    )
