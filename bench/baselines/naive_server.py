"""Baseline: a naive relay, Starlette + encode/broadcaster (redis) + sse-starlette, under uvicorn.

What a team would write in an afternoon: every WebSocket or SSE stream subscribes to one
broadcaster channel and forwards each message published there (by another process, with a
plain Redis PUBLISH). No log, no resume, no auth. Runs in bench/.venv-baselines (redis-py
7.x: broadcaster 0.3.1 silently delivers nothing with redis-py 8).

    GET /ws/{channel}    WebSocket: {"ready": true} once subscribed, then each message as a text frame
    GET /sse/{channel}   SSE: an ``event: ready`` first, then each message as ``data:``
    GET /healthz         {"status": "ok"}
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import uvicorn
from broadcaster import Broadcast
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect


def build(redis_url: str) -> Starlette:
    broadcast = Broadcast(redis_url)

    async def ws_endpoint(websocket: WebSocket) -> None:
        # The broadcaster README's pattern: one task forwards, one notices the disconnect.
        await websocket.accept()
        channel = websocket.path_params["channel"]

        async def sender(scope: anyio.CancelScope) -> None:
            async with broadcast.subscribe(channel) as subscriber:
                await websocket.send_text('{"ready": true}')
                async for event in subscriber:  # type: ignore[union-attr]
                    await websocket.send_text(event.message)
            scope.cancel()

        async def receiver(scope: anyio.CancelScope) -> None:
            with contextlib.suppress(WebSocketDisconnect):
                async for _ in websocket.iter_text():
                    pass
            scope.cancel()

        async with anyio.create_task_group() as group:
            group.start_soon(sender, group.cancel_scope)
            group.start_soon(receiver, group.cancel_scope)

    async def sse_endpoint(request: Request) -> EventSourceResponse:
        channel = request.path_params["channel"]

        async def events() -> AsyncIterator[dict[str, Any]]:
            async with broadcast.subscribe(channel) as subscriber:
                yield {"event": "ready", "data": "1"}
                async for event in subscriber:  # type: ignore[union-attr]
                    yield {"data": event.message}

        return EventSourceResponse(events())

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await broadcast.connect()
        try:
            yield
        finally:
            await broadcast.disconnect()

    return Starlette(
        routes=[
            WebSocketRoute("/ws/{channel}", ws_endpoint),
            Route("/sse/{channel}", sse_endpoint),
            Route("/healthz", healthz),
        ],
        lifespan=lifespan,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    args = parser.parse_args()
    uvicorn.run(
        build(args.redis_url),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
