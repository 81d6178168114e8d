"""The floor for scenario C: a bare ASGI app under uvicorn, no Starlette, no skillwire.

Its WebSocket handler accepts the connection and then only awaits ``receive()`` until the
client disconnects, so an idle connection costs what uvicorn and websockets alone allocate
for it. Run with skillwire's own .venv and skillwire's uvicorn settings (default ws
implementation, httptools, uvloop, 1 MiB ws_max_size, log level warning): its RSS per
connection is the part of skillwire's that the server stack takes before skillwire's code.

    WebSocket on any path   accepted, then silent
    GET /healthz            {"status": "ok"}
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

WS_MAX_SIZE = 1024 * 1024  # skillwire's default ws_max_message, which it passes to uvicorn


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "websocket":
        if (await receive())["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        while (await receive())["type"] != "websocket.disconnect":
            pass
    elif scope["type"] == "http":
        found = scope["path"] == "/healthz"
        await send(
            {
                "type": "http.response.start",
                "status": 200 if found else 404,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"status": "ok"}' if found else b""})
    elif scope["type"] == "lifespan":
        # skillwire runs with lifespan="on": answer it rather than have uvicorn probe for it
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        ws_max_size=WS_MAX_SIZE,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
