"""Client rate limits on everything under ``/api/v1``: per key, or per IP without a valid key.

The check runs before authentication (so floods of bad keys are limited by IP too), adds
``X-RateLimit-*`` headers to every response while a limit is on, and answers 429 with
``Retry-After`` past it. A WebSocket over its limit is accepted and closed with 1013.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from skillwire.protocol import CloseCode, RateLimited

from .._ratelimit import Decision
from .._runtime import Runtime
from ._middleware import request_id_of
from ._responses import error_response

__all__ = ["RateLimitMiddleware"]


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, runtime: Callable[[], Runtime]) -> None:
        self.app = app
        self.runtime = runtime

    async def _decide(self, scope: Scope) -> Decision | None:
        runtime = self.runtime()
        limits = runtime.limits
        authorization = _header(scope, b"authorization")
        key = _header(scope, b"x-api-key")
        if authorization and authorization.lower().startswith("bearer "):
            key = authorization[7:].strip()
        principal = runtime.keys.lookup(key) if key else None
        if principal is not None:
            item = limits.client_limit(principal.rate_limit, principal.role)
            identity = ("key", principal.name)
        else:
            item = limits.client_limit(None, None)
            client = scope.get("client")
            identity = ("ip", client[0] if client else "unknown")
        if item is None:
            return None
        return await limits.hit(item, *identity)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] not in ("http", "websocket")
            or not scope["path"].startswith("/api/v1")
            or self.runtime().limits.clients_unlimited
        ):
            await self.app(scope, receive, send)
            return
        decision = await self._decide(scope)
        if decision is None:
            await self.app(scope, receive, send)
            return
        headers = decision.headers
        if not decision.allowed:
            self.runtime().metrics.rate_limited.labels("client").inc()
            retry_after = str(max(int(decision.reset_after + 0.999), 1))
            if scope["type"] == "websocket":
                await receive()  # websocket.connect
                await send({"type": "websocket.accept"})
                await send(
                    {
                        "type": "websocket.close",
                        "code": CloseCode.TRY_AGAIN_LATER,
                        "reason": "rate limited",
                    }
                )
                return
            response = error_response(
                RateLimited(
                    f"rate limit of {decision.limit} exceeded; retry in {retry_after} s",
                    details={"limit": decision.limit, "retry_after": int(retry_after)},
                ),
                request_id_of(scope),
                headers={**headers, "Retry-After": retry_after},
            )
            await response(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)  # no headers to add: keep the frame path bare
            return
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *raw]
            await send(message)

        await self.app(scope, receive, send_with_headers)
