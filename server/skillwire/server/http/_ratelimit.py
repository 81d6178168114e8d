"""The client rate limit on HTTP: everything under ``/api/v1``, per key, or per IP without a
valid key (the rate-limit service, ``_ratelimit.py``, decides; this is its HTTP edge).

The check runs before authentication (so floods of bad keys are limited by IP too), adds
``X-RateLimit-*`` headers to every response while a limit is on, and answers 429 with
``Retry-After`` past it. A WebSocket is the channel's to limit (``channels/_websocket.py``):
over its limit it is accepted and closed with 1013, and each ``call`` op on an open one
counts too.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from .._runtime import Runtime
from ..channels import websocket_refused
from ._middleware import request_id_of
from ._responses import error_response, is_openai_path

__all__ = ["RateLimitMiddleware"]


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
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        decision = await runtime.limits.check_request(scope, runtime.keys)
        if decision is None:
            await self.app(scope, receive, send)
            return
        headers = decision.headers
        if not decision.allowed:
            response = error_response(
                decision.refusal(),
                request_id_of(scope),
                headers={**headers, "Retry-After": str(decision.retry_after)},
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
