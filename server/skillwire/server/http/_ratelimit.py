"""The client rate limit on HTTP: everything under ``/api/v1``, per key, or per IP without a
valid key (the rate-limit service, ``_ratelimit.py``, decides; this is its HTTP edge, which
the request-context layer, ``_middleware.py``, runs in its own step: no layer of its own).

The check runs before authentication (so floods of bad keys are limited by IP too), adds
``X-RateLimit-*`` headers to every response while a limit is on, and answers 429 with
``Retry-After`` past it. A WebSocket is the channel's to limit (``channels/_websocket.py``):
over its limit it is accepted and closed with 1013, and each ``call`` op on an open one
counts too.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from .._runtime import Runtime
from ..channels import websocket_refused
from ._responses import error_response, is_openai_path

__all__ = ["HttpRateLimit"]

RawHeaders = list[tuple[bytes, bytes]]
_NONE: RawHeaders = []


class HttpRateLimit:
    def __init__(self, runtime: Callable[[], Runtime]) -> None:
        self.runtime = runtime

    async def refuses_websocket(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """True when the handshake was over its limit (and has been answered)."""
        return await websocket_refused(self.runtime(), WebSocket(scope, receive, send))

    async def check(self, scope: Scope, request_id: str) -> tuple[Response | None, RawHeaders]:
        """An HTTP request counted: the 429 to answer past the limit, else the headers to
        add to its response (none while no limit applies)."""
        runtime = self.runtime()
        decision = await runtime.limits.check_request(scope, runtime.keys)
        if decision is None:
            return None, _NONE
        headers = decision.headers
        if not decision.allowed:
            refusal = error_response(
                decision.refusal(),
                request_id,
                headers={**headers, "Retry-After": str(decision.retry_after)},
                openai=is_openai_path(scope),
            )
            return refusal, _NONE
        return None, [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()
        ]
