"""Client rate limits on everything under ``/api/v1``: per key, or per IP without a valid key.

The check runs before authentication (so floods of bad keys are limited by IP too), adds
``X-RateLimit-*`` headers to every response while a limit is on, and answers 429 with
``Retry-After`` past it. A WebSocket over its limit is accepted and closed with 1013.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from skillwire.protocol import CloseCode, RateLimited

from .._ratelimit import Decision
from .._runtime import Runtime
from ._middleware import request_id_of
from ._responses import error_response, is_openai_path

__all__ = ["RateLimitMiddleware", "websocket_refused"]


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _decide(runtime: Runtime, scope: Scope) -> Decision | None:
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


def _limited(scope: Scope) -> bool:
    path: str = scope["path"]
    return path.startswith("/api/v1") or is_openai_path(scope)


async def websocket_refused(runtime: Runtime, websocket: WebSocket) -> bool:
    """True when a WebSocket is over its limit: it has been accepted and closed with 1013."""
    if runtime.limits.clients_unlimited or not _limited(websocket.scope):
        return False
    decision = await _decide(runtime, websocket.scope)
    if decision is None or decision.allowed:
        return False
    runtime.metrics.rate_limited.labels("client").inc()
    await websocket.accept()
    await websocket.close(CloseCode.TRY_AGAIN_LATER, "rate limited")
    return True


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, runtime: Callable[[], Runtime]) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        runtime = self.runtime()
        if scope["type"] == "websocket":
            if not await websocket_refused(runtime, WebSocket(scope, receive, send)):
                await self.app(scope, receive, send)  # no headers to add: the frame path stays bare
            return
        if scope["type"] != "http" or not _limited(scope) or runtime.limits.clients_unlimited:
            await self.app(scope, receive, send)
            return
        decision = await _decide(runtime, scope)
        if decision is None:
            await self.app(scope, receive, send)
            return
        headers = decision.headers
        if not decision.allowed:
            runtime.metrics.rate_limited.labels("client").inc()
            retry_after = str(max(int(decision.reset_after + 0.999), 1))
            response = error_response(
                RateLimited(
                    f"rate limit of {decision.limit} exceeded; retry in {retry_after} s",
                    details={"limit": decision.limit, "retry_after": int(retry_after)},
                ),
                request_id_of(scope),
                headers={**headers, "Retry-After": retry_after},
                openai=is_openai_path(scope),
            )
            await response(scope, receive, send)
            return
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *raw]
            await send(message)

        await self.app(scope, receive, send_with_headers)
