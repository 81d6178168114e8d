"""Tasks: get (with long-polling), list, cancel."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from skillwire.protocol import TaskList, TaskStatus

from .._links import root_of, rooted_task
from .._params import MAX_SAFE_INTEGER, enum_param, float_param, int_param
from ..auth import Permission
from ._auth import require, runtime_of
from ._responses import JSONResponse

__all__ = ["cancel_task", "get_task", "list_tasks"]

MAX_WAIT = 60.0


async def get_task(request: Request) -> Response:
    principal = await require(request, Permission.READ)
    runtime = runtime_of(request)
    task_id = request.path_params["task_id"]
    wait = float_param(request.query_params, "wait")
    if wait:
        task = await runtime.tasks.wait(principal, task_id, min(wait, MAX_WAIT))
    else:
        task = (await runtime.tasks.get(principal, task_id)).task
    return JSONResponse(rooted_task(task, root_of(request.scope)))


async def list_tasks(request: Request) -> Response:
    principal = await require(request, Permission.READ)
    params = request.query_params
    limit = int_param(params, "limit", 50, low=1, high=1000)
    offset = int_param(params, "offset", 0, high=MAX_SAFE_INTEGER)
    items, total = await runtime_of(request).tasks.list(
        principal,
        status=enum_param(params, "status", TaskStatus),
        app=params.get("app") or None,
        skill=params.get("skill") or None,
        limit=limit,
        offset=offset,
    )
    root = root_of(request.scope)
    items = [rooted_task(task, root) for task in items]
    return JSONResponse(TaskList(items=items, total=total, limit=limit, offset=offset))


async def cancel_task(request: Request) -> Response:
    principal = await require(request, Permission.CANCEL)
    runtime = runtime_of(request)
    task = await runtime.tasks.cancel(principal, request.path_params["task_id"], channel="rest")
    return JSONResponse(rooted_task(task, root_of(request.scope)))
