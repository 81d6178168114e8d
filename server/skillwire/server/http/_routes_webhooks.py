"""Webhook deliveries (admin): list them by status, and send one again."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from skillwire.protocol import DeliveryList, DeliveryStatus

from .._logging import audit
from .._params import enum_param, int_param
from ..auth import Permission
from ..webhooks import delivery_view
from ._auth import require, runtime_of
from ._responses import JSONResponse

__all__ = ["list_deliveries", "retry_delivery"]


async def list_deliveries(request: Request) -> Response:
    await require(request, Permission.ADMIN)
    params = request.query_params
    limit = int_param(params, "limit", 50, low=1, high=1000)
    offset = int_param(params, "offset", 0, high=1_000_000)
    records, total = await runtime_of(request).backbone.list_deliveries(
        status=enum_param(params, "status", DeliveryStatus), limit=limit, offset=offset
    )
    items = [delivery_view(r) for r in records]
    return JSONResponse(DeliveryList(items=items, total=total, limit=limit, offset=offset))


async def retry_delivery(request: Request) -> Response:
    principal = await require(request, Permission.ADMIN)
    delivery_id = request.path_params["delivery_id"]
    record = await runtime_of(request).backbone.retry_delivery(delivery_id)
    audit("webhook.retry", principal.name, delivery_id=delivery_id, task_id=record.task_id)
    return JSONResponse(delivery_view(record), status_code=202)
