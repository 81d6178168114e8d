"""Remote workers: who is connected (admin)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from skillwire.protocol import WorkerList

from ..auth import Permission
from ._auth import require, runtime_of
from ._responses import JSONResponse

__all__ = ["list_workers"]


async def list_workers(request: Request) -> Response:
    await require(request, Permission.ADMIN)
    return JSONResponse(WorkerList(items=await runtime_of(request).remote.listing()))
