"""Skills: list them, describe one, and call one."""

from __future__ import annotations

from typing import Any, Literal

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import request_response
from starlette.types import Receive, Scope, Send

from skillwire.protocol import (
    BadRequest,
    CallBody,
    SkillMode,
    UnsupportedVersion,
    encode,
    lifecycle,
    validate,
)

from .._accept import accept_quality
from .._links import root_of, rooted_task
from .._params import idempotency_key, parse_prefer
from .._runtime import Runtime
from ..auth import Permission, authenticate_key, credentials_of
from ..channels import stream_response
from ._auth import require, runtime_of
from ._body import read_json_from, receive_chunks
from ._responses import JSONResponse

__all__ = ["SkillRoute", "call_skill", "get_skill", "list_apps"]

_BOOLEANS = ("true", "false", "1", "0")  # as ``?snapshot=`` takes them
_CALL_HEADERS = frozenset(
    ("authorization", "x-api-key", "prefer", "idempotency-key", "content-length", "accept")
)
_JSON = (b"content-type", b"application/json")


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


class SkillRoute:
    """``/api/v1/apps/{app}/{skill}`` as a plain ASGI app: a POST is the call, answered from
    the raw scope and ``receive`` (no ``Request``, ``Headers`` or ``Response`` objects, nor
    Starlette's per-request exception wrapper: a quick call is the API's hottest path); GET
    and HEAD describe the skill, through Starlette as every other route.

    An error raised here reaches the app's exception handlers as from any route.
    """

    def __init__(self) -> None:
        self._describe = request_response(get_skill)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "POST":
            await call_skill(scope, receive, send)
        else:
            await self._describe(scope, receive, send)


def _headers_of(scope: Scope) -> dict[str, str]:
    """The headers a call reads, each by its first value (as ``Headers.get`` gives it)."""
    found: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1")
        if name in _CALL_HEADERS and name not in found:
            found[name] = raw_value.decode("latin-1")
    return found


async def call_skill(scope: Scope, receive: Receive, send: Send) -> None:
    headers = _headers_of(scope)
    runtime: Runtime = scope["app"].state.skillwire
    principal = authenticate_key(scope, credentials_of(headers), runtime.keys)
    params = scope["path_params"]
    spec = await runtime.tasks.callable_skill(principal, params["app"], params["skill"])
    prefer = parse_prefer(headers.get("prefer"))
    key = idempotency_key(headers.get("idempotency-key"))
    raw = await read_json_from(
        receive_chunks(receive), headers.get("content-length"), runtime.config.max_body
    )
    _check_version(raw)
    body = validate(raw, CallBody)

    stream = _stream_format(scope, headers.get("accept", ""))
    result = await runtime.tasks.call(
        principal, spec, body, channel=stream or "rest", idempotency_key=key
    )
    task = result.task
    if stream is not None:
        request = Request(scope, receive, send)
        response = await stream_response(request, principal, task.task_id, stream, after=0)
        await response(scope, receive, send)
        return
    if result.replayed or prefer.respond_async:
        wait = 0.0
    elif prefer.wait is not None:
        wait = min(prefer.wait, runtime.config.max_wait)
    else:
        wait = runtime.config.quick_wait if spec.mode is SkillMode.QUICK else 0.0
    if wait > 0:
        task = await runtime.tasks.wait(principal, task.task_id, wait, created=task)
    task = rooted_task(task, root_of(scope))
    content = encode(task)
    # The headers JSONResponse would send, in its order (Location first when given).
    length = (b"content-length", str(len(content)).encode("latin-1"))
    if task.status in lifecycle.TERMINAL_TASK_STATUSES:
        status, raw_headers = 200, [length, _JSON]
    else:
        location = (b"location", task.links.self.encode("latin-1"))
        status, raw_headers = 202, [location, length, _JSON]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": content})


def _stream_format(scope: Scope, accept: str) -> Literal["sse", "ndjson"] | None:
    sse = accept_quality(accept, "text/event-stream")
    ndjson = accept_quality(accept, "application/x-ndjson")
    if sse > 0 and sse >= ndjson:
        return "sse"
    if ndjson > 0:
        return "ndjson"
    # Most calls carry no query string: skip parsing one.
    if not scope["query_string"]:
        return None
    raw = QueryParams(scope["query_string"]).get("stream", "false").lower()
    if raw not in _BOOLEANS:  # a typo must not silently turn a streaming call into a plain one
        raise BadRequest("stream must be true or false", details={"field": "stream"})
    return "ndjson" if raw in ("true", "1") else None
