"""The REST transport: one httpx.AsyncClient, typed decoding, error mapping and retries.

Retries follow one rule: a request is sent again only when doing so cannot do anything
twice. A request that never reached the server (no connection) and a 503 or 429 (the server
refused it before acting) are always retried; a request that may have reached the server is
retried only when it is idempotent: a GET, or a POST carrying an ``Idempotency-Key``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any, TypeVar

import httpx
import msgspec

from skillwire.protocol import RateLimited, ServiceUnavailable, SkillwireError

from ._errors import TransportError, error_from_response, map_httpx_exceptions, undecodable
from ._settings import Settings

__all__ = ["HttpTransport"]

T = TypeVar("T")

_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}
MAX_RETRY_AFTER = 60.0


def _decoder(type_: type[T]) -> msgspec.json.Decoder[T]:
    decoder = _decoders.get(type_)
    if decoder is None:
        decoder = _decoders[type_] = msgspec.json.Decoder(type_)
    return decoder


def decode(type_: type[T], content: bytes) -> T:
    """``content`` as ``type_``; a body that breaks the contract is an ``InternalError``."""
    try:
        return _decoder(type_).decode(content)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise undecodable(type_.__name__, exc) from exc


class HttpTransport:
    """REST calls against one skillwire server; owns its ``httpx.AsyncClient``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client = httpx.AsyncClient(
            base_url=settings.base_url,
            headers=settings.auth_headers(),
            timeout=settings.timeout,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    def _timeout(self, extra_read: float) -> httpx.Timeout:
        timeout = self.settings.timeout
        return httpx.Timeout(timeout, read=timeout + extra_read)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int | float] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        extra_read: float = 0.0,
    ) -> httpx.Response:
        """Send a request; return its 2xx response or raise the error it stands for."""
        content = msgspec.json.encode(json) if json is not None else None
        all_headers = dict(headers or {})
        if content is not None:
            all_headers["Content-Type"] = "application/json"
        idempotent = method == "GET" or (method == "POST" and "Idempotency-Key" in all_headers)
        attempt = 0
        while True:
            try:
                with map_httpx_exceptions():
                    response = await self._client.request(
                        method,
                        path,
                        params=params,
                        content=content,
                        headers=all_headers,
                        timeout=self._timeout(extra_read),
                    )
                if response.is_success:
                    return response
                raise error_from_response(response.status_code, response.headers, response.content)
            except SkillwireError as exc:
                delay = self._retry_delay(exc, attempt, idempotent=idempotent)
                if delay is None:
                    raise
            await asyncio.sleep(delay)
            attempt += 1

    def _retry_delay(self, exc: SkillwireError, attempt: int, *, idempotent: bool) -> float | None:
        """Seconds to wait before sending again, or None when the error is final."""
        if attempt >= self.settings.retries:
            return None
        delay = self.settings.backoff.delay(attempt)
        if isinstance(exc, TransportError):
            safe = exc.temporary and (idempotent or not exc.connected)
            return delay if safe else None
        if isinstance(exc, RateLimited):
            retry_after = exc.details.get("retry_after")
            if isinstance(retry_after, int | float):
                return min(float(retry_after), MAX_RETRY_AFTER) if retry_after else delay
            return delay
        if isinstance(exc, ServiceUnavailable):
            return delay
        return None

    async def get(self, type_: type[T], path: str, **kwargs: Any) -> T:
        response = await self.request("GET", path, **kwargs)
        return decode(type_, response.content)

    @contextlib.asynccontextmanager
    async def stream(
        self,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        read_timeout: float,
    ) -> AsyncIterator[httpx.Response]:
        """A streaming GET whose body is read as it arrives; non-2xx raises its error.

        Exceptions while reading the body must be mapped by the caller
        (``map_httpx_exceptions``), since they surface outside this context manager's frame.
        """
        timeout = httpx.Timeout(self.settings.timeout, read=read_timeout)
        with map_httpx_exceptions():
            request = self._client.build_request(
                "GET", path, params=params, headers=headers, timeout=timeout
            )
            response = await self._client.send(request, stream=True)
        try:
            if not response.is_success:
                with map_httpx_exceptions():
                    body = await response.aread()
                raise error_from_response(response.status_code, response.headers, body)
            yield response
        finally:
            with contextlib.suppress(httpx.HTTPError):
                await response.aclose()
