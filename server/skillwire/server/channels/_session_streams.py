"""SSE and NDJSON of a session's log: ``GET /api/v1/sessions/{id}/events``.

The same response as a task's stream, following a ``SessionLog``: ``id:`` is the session's
seq, ``event:`` the session event's type; it ends after ``session.closed``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from .._runtime import runtime_of
from ..auth import Permission, require
from ._sources import SessionLog
from ._streams import EventStreamResponse, parse_after, parse_snapshot, stream_format

__all__ = ["session_events_endpoint"]


async def session_events_endpoint(request: Request) -> Response:
    runtime = runtime_of(request)
    principal = await require(request, runtime.keys, Permission.READ, tickets=runtime.backbone)
    after = parse_after(request)
    snapshot = parse_snapshot(request)
    fmt = stream_format(request)
    session_id = request.path_params["session_id"]
    await runtime.tasks.sessions.get(principal, session_id)  # 404 / 410 before any byte
    return EventStreamResponse(
        runtime,
        session_id,
        after,
        fmt,
        snapshot=snapshot,
        source=SessionLog(runtime.backbone, session_id),
    )
