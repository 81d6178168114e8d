"""Sessions: create, list, get, close (DELETE). Their events are a channel (channels/)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from skillwire.protocol import SessionBody, SessionList, validate

from .._logging import audit
from .._params import int_param
from ..auth import Permission
from ._auth import require, runtime_of
from ._body import read_json
from ._responses import JSONResponse

__all__ = ["close_session", "create_session", "get_session", "list_sessions"]


def _has_body(request: Request) -> bool:
    """An empty POST creates an untitled session: a body is optional here."""
    length = request.headers.get("content-length")
    if length is not None:
        return length != "0"
    return "transfer-encoding" in request.headers


async def create_session(request: Request) -> Response:
    principal = await require(request, Permission.CALL)
    runtime = runtime_of(request)
    raw: Any = await read_json(request, runtime.config.max_body) if _has_body(request) else {}
    body = validate(raw, SessionBody)
    session = await runtime.tasks.sessions.create(principal, body)
    audit("session", principal.name, session_id=session.session_id, channel="rest")
    return JSONResponse(
        session,
        status_code=201,
        headers={
            "Location": f"{request.scope.get('root_path', '').rstrip('/')}"
            f"/api/v1/sessions/{session.session_id}"
        },
    )


async def list_sessions(request: Request) -> Response:
    principal = await require(request, Permission.READ)
    params = request.query_params
    limit = int_param(params, "limit", 50, low=1, high=1000)
    offset = int_param(params, "offset", 0)
    items, total = await runtime_of(request).tasks.sessions.list(
        principal, limit=limit, offset=offset
    )
    return JSONResponse(SessionList(items=items, total=total, limit=limit, offset=offset))


async def get_session(request: Request) -> Response:
    principal = await require(request, Permission.READ)
    stored = await runtime_of(request).tasks.sessions.get(
        principal, request.path_params["session_id"]
    )
    return JSONResponse(stored.session)


async def close_session(request: Request) -> Response:
    principal = await require(request, Permission.CANCEL)
    session = await runtime_of(request).tasks.sessions.close(
        principal, request.path_params["session_id"]
    )
    audit("close_session", principal.name, session_id=session.session_id, channel="rest")
    return JSONResponse(session)
