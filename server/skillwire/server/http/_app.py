"""``create_app``: a plain ASGI application serving API v1."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from skillwire.protocol import (
    BackboneUnavailable,
    MethodNotAllowed,
    NotFound,
    SkillwireError,
    Unauthorized,
)

from .._config import Config, load_config
from .._runtime import Runtime
from ..channels import (
    WORKERS_WS_PATH,
    WS_PATH,
    channel_routes,
    websocket_endpoint,
    workers_endpoint,
)
from ..engine import App
from ._auth import authenticate
from ._docs_page import docs_asset, docs_page
from ._middleware import RequestContextMiddleware, assign_request_id, request_id_of
from ._ratelimit import HttpRateLimit
from ._responses import error_response, is_openai_path
from ._routes_health import health, ready
from ._routes_openai import openai_routes
from ._routes_ops import asyncapi, metrics, openapi
from ._routes_sessions import close_session, create_session, get_session, list_sessions
from ._routes_skills import SkillRoute, list_apps
from ._routes_tasks import cancel_task, get_task, list_tasks
from ._routes_tickets import issue_ticket
from ._routes_webhooks import list_deliveries, retry_delivery
from ._routes_workers import list_workers
from ._static import client_module, demo_page

__all__ = ["create_app"]

Endpoint = Callable[[Request], Awaitable[Response]]
API_PREFIX = "/api/v1"  # everything below it needs credentials, unknown routes included


async def _skillwire_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SkillwireError)
    if isinstance(exc, BackboneUnavailable):
        request.app.state.skillwire.metrics.backbone_errors.labels("http").inc()
    return error_response(exc, request_id_of(request.scope), openai=is_openai_path(request.scope))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    request_id = request_id_of(request.scope)
    openai = is_openai_path(request.scope)
    if exc.status_code in (404, 405) and _under_api(request.scope):
        # Credentials first, as on every /api/v1 route: else a 404 or 405 without a key
        # would tell a stranger which routes and methods exist.
        try:
            await authenticate(request)
        except Unauthorized as refused:
            return error_response(refused, request_id)
    if exc.status_code == 404:
        return error_response(
            NotFound(f"no route for {request.url.path}"), request_id, openai=openai
        )
    if exc.status_code == 405:
        allow = dict(exc.headers or {})
        return error_response(
            MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}"),
            request_id,
            headers=allow,
            openai=openai,
        )
    error = SkillwireError(exc.detail)
    error.status = exc.status_code  # type: ignore[misc]
    return error_response(error, request_id, openai=openai)


def _by_method(**handlers: Endpoint) -> Endpoint:
    """One endpoint for several methods, so a 405 lists every allowed method."""

    async def dispatch(request: Request) -> Response:
        return await handlers[request.method](request)

    return dispatch


def _routes() -> list[BaseRoute]:
    # Starlette tries routes in order: the API's own (calls, tasks, streams) come first, so a
    # call is matched at the first try rather than after the ops and docs pages.
    return [
        Route("/api/v1/apps/{app}/{skill}", SkillRoute(), methods=["GET", "POST"]),
        Route(
            "/api/v1/tasks/{task_id}",
            _by_method(GET=get_task, HEAD=get_task, DELETE=cancel_task),
            methods=["GET", "DELETE"],
        ),
        *channel_routes(),
        Route("/api/v1/tickets", issue_ticket, methods=["POST"]),
        *openai_routes(),
        Route(
            "/api/v1/sessions",
            _by_method(GET=list_sessions, HEAD=list_sessions, POST=create_session),
            methods=["GET", "POST"],
        ),
        Route(
            "/api/v1/sessions/{session_id}",
            _by_method(GET=get_session, HEAD=get_session, DELETE=close_session),
            methods=["GET", "DELETE"],
        ),
        Route("/api/v1/apps", list_apps, methods=["GET"]),
        Route("/api/v1/tasks", list_tasks, methods=["GET"]),
        Route("/api/v1/workers", list_workers, methods=["GET"]),
        Route("/api/v1/webhooks/deliveries", list_deliveries, methods=["GET"]),
        Route("/api/v1/webhooks/deliveries/{delivery_id}/retry", retry_delivery, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/healthz", health, methods=["GET"]),
        Route("/readyz", ready, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/asyncapi.json", asyncapi, methods=["GET"]),
        Route("/docs", docs_page, methods=["GET"]),
        Route("/docs/{name}", docs_asset, methods=["GET"]),
        Route("/", demo_page, methods=["GET"]),
        Route("/skillwire.js", client_module, methods=["GET"]),
    ]


def _cors(origins: Sequence[str]) -> Middleware:
    return Middleware(
        CORSMiddleware,
        allow_origins=list(origins),
        allow_methods=["GET", "HEAD", "POST", "DELETE", "OPTIONS"],
        allow_headers=[
            "Authorization",
            "X-API-Key",
            "Content-Type",
            "Last-Event-ID",
            "Idempotency-Key",
            "Prefer",
            "X-Request-ID",
        ],
        expose_headers=[
            "X-Request-ID",
            "Location",
            "Retry-After",
            "X-RateLimit-Limit",
            "X-RateLimit-Remaining",
            "X-RateLimit-Reset",
            "Skillwire-Task-Id",
        ],
        max_age=600,
    )


class _Gateway(Starlette):
    """Starlette, with a shortcut: a WebSocket on the channel's path goes straight to it.

    Every middleware layer and the router keep a coroutine frame alive for as long as a
    connection lasts: ~6 KiB per idle WebSocket (bench scenario C). Of what they do, only
    the client rate limit applies to a WebSocket, and the channel applies it itself.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ws_path = WS_PATH
        self._ws_endpoint = websocket_endpoint
        self._workers_path = WORKERS_WS_PATH
        self._workers_endpoint = workers_endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            path = _route_path(scope)
            if path == self._ws_path:
                scope["app"] = self
                assign_request_id(scope)  # the middleware that does it is skipped here
                await self._ws_endpoint(WebSocket(scope, receive, send), rate_limit=True)
                return
            if path == self._workers_path:  # idle workers hold no middleware frames either
                scope["app"] = self
                assign_request_id(scope)
                await self._workers_endpoint(WebSocket(scope, receive, send), rate_limit=True)
                return
        await super().__call__(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The path below the app's mount point (``root_path``), as Starlette's router sees it."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root + "/"):
        return path[len(root) :]
    return path


def _under_api(scope: Scope) -> bool:
    path = _route_path(scope)
    return path == API_PREFIX or path.startswith(API_PREFIX + "/")


def create_app(config: Config | None = None, apps: Sequence[App | str] = ()) -> Starlette:
    """A skillwire ASGI app; ``config=None`` reads the environment (``SKILLWIRE_*``).

    Run it under any ASGI server, or mount it in a Starlette or FastAPI application.
    """
    runtime = Runtime.build(config if config is not None else load_config(), apps)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    middleware = [
        Middleware(
            RequestContextMiddleware,
            draining=lambda: runtime.draining,
            metrics=runtime.metrics,
            limit=HttpRateLimit(lambda: runtime),
        ),
    ]
    if runtime.config.cors.allow_origins:
        # Outermost, so that every answer (a 503 while draining, a 500) carries CORS headers.
        middleware.insert(0, _cors(runtime.config.cors.allow_origins))
    app = _Gateway(
        routes=_routes(),
        middleware=middleware,
        exception_handlers={SkillwireError: _skillwire_error, HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.skillwire = runtime
    return app
