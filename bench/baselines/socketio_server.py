"""Baseline: python-socketio with AsyncRedisManager (ASGI) under uvicorn.

The usual way to push from workers to browsers with socket.io: clients join a room, and
another process emits to that room through the same Redis (``AsyncRedisManager`` with
``write_only=True``, see publish.py). Runs in bench/.venv-baselines.

    socket.io at /socket.io/  connect with ?room=NAME: joins NAME, then gets a ``ready`` event;
                              published messages arrive as ``tick`` events
    GET /healthz              {"status": "ok"}
"""

from __future__ import annotations

import argparse
from urllib.parse import parse_qs

import socketio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def build(redis_url: str) -> socketio.ASGIApp:
    manager = socketio.AsyncRedisManager(redis_url)
    sio = socketio.AsyncServer(async_mode="asgi", client_manager=manager, cors_allowed_origins=[])

    @sio.event
    async def connect(sid: str, environ: dict[str, object], auth: object = None) -> None:
        query = parse_qs(str(environ.get("QUERY_STRING", "")))
        room = query.get("room", ["default"])[0]
        await sio.enter_room(sid, room)
        await sio.emit("ready", {"room": room}, to=sid)

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    other = Starlette(routes=[Route("/healthz", healthz)])
    return socketio.ASGIApp(sio, other_asgi_app=other)


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
