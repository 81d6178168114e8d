"""Operations endpoints that need credentials: Prometheus metrics."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from skillwire.protocol import BackboneUnavailable

from .._metrics import CONTENT_TYPE_LATEST
from ..auth import Permission
from ._auth import require, runtime_of

__all__ = ["metrics"]


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
    return Response(runtime.metrics.render(), media_type=CONTENT_TYPE_LATEST)
