"""Operations endpoints that need credentials: Prometheus metrics, the OpenAPI and AsyncAPI
documents (``/docs``, the page that shows them, is http/_docs_page)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from skillwire.protocol import BackboneUnavailable

from .._metrics import CONTENT_TYPE_LATEST
from ..auth import Permission
from ._asyncapi import asyncapi_document
from ._auth import require, runtime_of
from ._openapi import openapi_document
from ._responses import JSONResponse

__all__ = ["asyncapi", "metrics", "openapi"]


async def metrics(request: Request) -> Response:
    await require(request, Permission.METRICS)
    runtime = runtime_of(request)
    try:
        depth, oldest = await runtime.backbone.queue_stats()
    except BackboneUnavailable:
        runtime.metrics.backbone_errors.labels("metrics").inc()
    else:
        runtime.metrics.queue_depth.set(depth)
        runtime.metrics.queue_oldest_age.set(oldest)
    in_flight = runtime.metrics.remote_in_flight
    in_flight.clear()
    for key, count in runtime.remote.in_flight().items():
        in_flight.labels(*key.split("/", 1)).set(count)
    return Response(runtime.metrics.render(), media_type=CONTENT_TYPE_LATEST)


async def openapi(request: Request) -> Response:
    await require(request, Permission.DOCS)
    return JSONResponse(_openapi_of(request))


async def asyncapi(request: Request) -> Response:
    await require(request, Permission.DOCS)
    return JSONResponse(asyncapi_document())


def _openapi_of(request: Request) -> dict[str, Any]:
    runtime = runtime_of(request)
    cached: dict[str, Any] | None = getattr(request.app.state, "openapi", None)
    if cached is None:
        cached = openapi_document(runtime.registry, runtime.config.max_requests)
        request.app.state.openapi = cached
    return cached
