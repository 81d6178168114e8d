"""The outermost layer: request ids, the access log line, metrics, the client rate limit and
the last-resort 500.

Pure ASGI (no BaseHTTPMiddleware), so streaming responses pass through untouched. One layer
for all of them, not one each: every layer is a coroutine frame and, where it adds headers, a
wrapped ``send`` per request, which a quick call pays for (docs/performance.md, "The quick
call, layer by layer").
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from skillwire.protocol import InternalError, ServiceUnavailable

from .._metrics import Metrics
from ._responses import error_response, is_openai_path

if TYPE_CHECKING:
    from ._ratelimit import HttpRateLimit

__all__ = ["RequestContextMiddleware", "assign_request_id", "request_id_of"]

log = logging.getLogger("skillwire.access")
errors = logging.getLogger("skillwire.errors")
_SANE_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")


def assign_request_id(scope: Scope) -> str:
    """The request's id, kept in its scope: the client's own ``X-Request-ID`` when sane, else
    a new one."""
    given = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"").decode("latin-1")
    # A correlation id, not a secret: the fast generator, not the OS's random source.
    request_id = given if _SANE_ID.match(given) else f"req_{random.getrandbits(64):016x}"
    scope.setdefault("state", {})["request_id"] = request_id
    return request_id


def request_id_of(scope: Scope) -> str | None:
    state = scope.get("state")
    return state.get("request_id") if isinstance(state, dict) else None


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        draining: Callable[[], bool] = lambda: False,
        metrics: Metrics | None = None,
        limit: HttpRateLimit | None = None,
    ) -> None:
        self.app = app
        self.draining = draining
        self.metrics = metrics
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = assign_request_id(scope)
        started = time.perf_counter()
        status = 0
        response_started = False
        limit_headers: list[tuple[bytes, bytes]] = []

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    *limit_headers,
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        try:
            if (
                self.draining()
                and scope["type"] == "http"
                and (scope["path"].startswith("/api/") or is_openai_path(scope))
            ):
                response = error_response(
                    ServiceUnavailable("server is shutting down"),
                    request_id,
                    openai=is_openai_path(scope),
                )
                await response(scope, receive, send_with_id)
                return
            if scope["type"] == "websocket":
                # Frames skip the wrapper (it only adds headers to HTTP responses), and the
                # channel's own limit answers a handshake over it.
                if self.limit is None or not await self.limit.refuses_websocket(
                    scope, receive, send
                ):
                    await self.app(scope, receive, send)
                return
            if self.limit is not None:
                refusal, limit_headers = await self.limit.check(scope, request_id)
                if refusal is not None:
                    await refusal(scope, receive, send_with_id)
                    return
            await self.app(scope, receive, send_with_id)
        except Exception:
            errors.exception("unhandled error; request_id=%s", request_id)
            if scope["type"] == "http" and not response_started:
                response = error_response(
                    InternalError("internal error"), request_id, openai=is_openai_path(scope)
                )
                await response(scope, receive, send_with_id)
        finally:
            if scope["type"] == "http":
                elapsed = time.perf_counter() - started
                route = getattr(scope.get("route"), "path", "unmatched")
                if log.isEnabledFor(logging.INFO):
                    self._log(scope, request_id, route, status, elapsed)
                if self.metrics is not None:
                    self.metrics.http_requests.labels(scope["method"], route, str(status)).inc()
                    self.metrics.http_seconds.labels(scope["method"], route).observe(elapsed)

    @staticmethod
    def _log(scope: Scope, request_id: str, route: str, status: int, elapsed: float) -> None:
        principal = scope.get("state", {}).get("principal", "-")
        fields = {
            "request_id": request_id,
            "principal": principal,
            "method": scope["method"],
            "route": route,
            "path": scope["path"],
            "status": status,
            "duration_ms": round(elapsed * 1000, 2),
        }
        log.info(
            "%s %s %d %.1fms",
            scope["method"],
            scope["path"],
            status,
            elapsed * 1000,
            extra={"fields": fields},
        )
