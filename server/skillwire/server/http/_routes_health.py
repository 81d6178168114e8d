"""Liveness and readiness probes (no auth)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from skillwire.protocol import HealthStatus, ReadyStatus, SkillwireError

from ._auth import runtime_of
from ._responses import JSONResponse

__all__ = ["health", "ready"]


async def health(request: Request) -> Response:
    return JSONResponse(HealthStatus())


async def ready(request: Request) -> Response:
    runtime = runtime_of(request)
    if runtime.draining:
        return JSONResponse(
            ReadyStatus(status="unavailable", checks={"server": "draining"}), status_code=503
        )
    try:
        await runtime.backbone.check()
    except SkillwireError as exc:
        return JSONResponse(
            ReadyStatus(status="unavailable", checks={"backbone": exc.message}), status_code=503
        )
    return JSONResponse(ReadyStatus(status="ok", checks={"backbone": "ok"}))
