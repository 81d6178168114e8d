"""Baseline for scenario E: a bare Starlette endpoint under uvicorn returning a fixed JSON.

It reads and parses the request body as a skillwire call would, then answers with the bytes
of a real ``demo/echo`` Task (captured from skillwire by bench/run), so both sides send the
same response. Run with skillwire's own .venv, so Starlette and uvicorn are the very versions
skillwire runs on and the ratio isolates what skillwire adds.

    POST /api/v1/apps/demo/echo  -> 200 with the captured JSON
    GET  /healthz
"""

from __future__ import annotations

import argparse
import json

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def build(body: bytes) -> Starlette:
    async def echo(request: Request) -> Response:
        json.loads(await request.body())
        return Response(body, media_type="application/json")

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/api/v1/apps/demo/echo", echo, methods=["POST"]),
            Route("/healthz", healthz),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body-file", required=True, help="the JSON to answer with")
    parser.add_argument("--loop", default="auto", help="uvicorn's --loop (auto, asyncio, uvloop)")
    args = parser.parse_args()
    with open(args.body_file, "rb") as fh:
        body = fh.read()
    uvicorn.run(
        build(body),
        host=args.host,
        port=args.port,
        loop=args.loop,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
