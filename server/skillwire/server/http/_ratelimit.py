"""Client rate limits on everything under ``/api/v1``: per key, or per IP without a valid key.

The check runs before authentication (so floods of bad keys are limited by IP too), adds
``X-RateLimit-*`` headers to every response while a limit is on, and answers 429 with
``Retry-After`` past it. A WebSocket over its limit is accepted and closed with 1013; each
``call`` op on an open WebSocket counts too, and past the limit gets a ``RATE_LIMITED`` op error.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from skillwire.protocol import CloseCode, RateLimited

from .._ratelimit import Decision
from .._runtime import Runtime
from ..auth import Principal
from ._middleware import request_id_of
from ._responses import error_response, is_openai_path

__all__ = ["RateLimitMiddleware", "count_call", "websocket_refused"]


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


def _refusal(decision: Decision) -> tuple[RateLimited, str]:
    """The error for a request over its limit, and its ``Retry-After`` (whole seconds, >= 1)."""
    retry_after = str(max(int(decision.reset_after + 0.999), 1))
    error = RateLimited(
        f"rate limit of {decision.limit} exceeded; retry in {retry_after} s",
        details={"limit": decision.limit, "retry_after": int(retry_after)},
    )
    return error, retry_after


async def count_call(runtime: Runtime, principal: Principal) -> None:
    """Count a WebSocket ``call`` op against its key's limit; raises RateLimited past it.

    The op counts like an HTTP request (API.md): without this, one socket could call as
    often as it liked however tight its key's limit.
    """
    limits = runtime.limits
    if limits.clients_unlimited:
        return
    item = limits.client_limit(principal.rate_limit, principal.role)
    if item is None:
        return
    decision = await limits.hit(item, "key", principal.name)
    if decision is None or decision.allowed:
        return
    runtime.metrics.rate_limited.labels("client").inc()
    raise _refusal(decision)[0]


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
            error, retry_after = _refusal(decision)
            response = error_response(
                error,
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
