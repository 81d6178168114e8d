"""Skills: list them, describe one, and call one."""

from __future__ import annotations

from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import Response

from skillwire.protocol import (
    BadRequest,
    CallBody,
    SkillMode,
    UnsupportedVersion,
    lifecycle,
    validate,
)

from .._accept import accept_quality
from .._links import root_of, rooted_task
from .._params import idempotency_key, parse_prefer
from ..auth import Permission
from ..channels import stream_response
from ._auth import authenticate, require, runtime_of
from ._body import read_json
from ._responses import JSONResponse

__all__ = ["call_skill", "get_skill", "list_apps"]

_BOOLEANS = ("true", "false", "1", "0")  # as ``?snapshot=`` takes them


async def list_apps(request: Request) -> Response:
    await require(request, Permission.READ)
    return JSONResponse(await runtime_of(request).tasks.apps())


async def get_skill(request: Request) -> Response:
    await require(request, Permission.READ)
    runtime = runtime_of(request)
    spec = await runtime.tasks.skill(request.path_params["app"], request.path_params["skill"])
    return JSONResponse(spec.describe(runtime.config.max_requests))


def _check_version(raw: Any) -> None:
    if isinstance(raw, dict) and "version" in raw and raw["version"] != "1":
        raise UnsupportedVersion(
            f'version {raw["version"]!r} is not supported; use "1"',
            details={"field": "version", "supported": ["1"]},
        )


async def call_skill(request: Request) -> Response:
    principal = await authenticate(request)
    runtime = runtime_of(request)
    spec = await runtime.tasks.callable_skill(
        principal, request.path_params["app"], request.path_params["skill"]
    )
    prefer = parse_prefer(request.headers.get("prefer"))
    key = idempotency_key(request.headers.get("idempotency-key"))
    raw = await read_json(request, runtime.config.max_body)
    _check_version(raw)
    body = validate(raw, CallBody)

    stream = _stream_format(request)
    result = await runtime.tasks.call(
        principal, spec, body, channel=stream or "rest", idempotency_key=key
    )
    task = result.task
    if stream is not None:
        return await stream_response(request, principal, task.task_id, stream, after=0)
    if result.replayed or prefer.respond_async:
        wait = 0.0
    elif prefer.wait is not None:
        wait = min(prefer.wait, runtime.config.max_wait)
    else:
        wait = runtime.config.quick_wait if spec.mode is SkillMode.QUICK else 0.0
    if wait > 0:
        task = await runtime.tasks.wait(principal, task.task_id, wait, created=task)
    task = rooted_task(task, root_of(request.scope))
    if task.status in lifecycle.TERMINAL_TASK_STATUSES:
        return JSONResponse(task, status_code=200)
    return JSONResponse(task, status_code=202, headers={"Location": task.links.self})


def _stream_format(request: Request) -> Literal["sse", "ndjson"] | None:
    accept = request.headers.get("accept", "")
    sse = accept_quality(accept, "text/event-stream")
    ndjson = accept_quality(accept, "application/x-ndjson")
    if sse > 0 and sse >= ndjson:
        return "sse"
    if ndjson > 0:
        return "ndjson"
    # Most calls carry no query string: skip parsing one.
    if not request.scope["query_string"]:
        return None
    raw = request.query_params.get("stream", "false").lower()
    if raw not in _BOOLEANS:  # a typo must not silently turn a streaming call into a plain one
        raise BadRequest("stream must be true or false", details={"field": "stream"})
    return "ndjson" if raw in ("true", "1") else None
