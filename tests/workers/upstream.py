"""A small HTTP service standing for an operator's HTTP skills, served by uvicorn in a thread."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.conftest import free_port, scaled


class Upstream:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.bodies: list[dict[str, Any]] = []
        self.disconnected = threading.Event()
        self.headers: list[dict[str, str]] = []
        app = Starlette(
            routes=[
                Route("/json", self.json, methods=["POST"]),
                Route("/ndjson", self.ndjson, methods=["POST"]),
                Route("/sse", self.sse, methods=["POST"]),
                Route("/fail", self.fail, methods=["POST"]),
                Route("/unended", self.unended, methods=["POST"]),
                Route("/slow", self.slow, methods=["POST"]),
                Route("/broken", self.broken, methods=["POST"]),
            ]
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + scaled(10)
        while not self.server.started:
            assert time.monotonic() < deadline, "upstream did not start"
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(scaled(10))

    async def _body(self, request: Request) -> dict[str, Any]:
        body: dict[str, Any] = await request.json()
        self.bodies.append(body)
        self.headers.append(dict(request.headers))
        return body

    async def json(self, request: Request) -> Response:
        body = await self._body(request)
        return JSONResponse({"type": "text", "text": body["input"]["text"].upper()})

    @staticmethod
    def _messages(text: str) -> list[dict[str, Any]]:
        return [
            {"op": "progress", "progress": 0.5, "message": "half"},
            {"op": "output", "output": {"type": "text", "text": ""}},
            *({"op": "delta", "output": 0, "field": "text", "append": c} for c in text),
            {"op": "completed", "data": {"letters": len(text)}},
        ]

    async def ndjson(self, request: Request) -> Response:
        body = await self._body(request)
        lines = "".join(json.dumps(m) + "\n" for m in self._messages(body["input"]["text"]))
        return Response(lines, media_type="application/x-ndjson")

    async def sse(self, request: Request) -> Response:
        body = await self._body(request)
        frames = "".join(
            f"event: message\nid: {i}\ndata: {json.dumps(m)}\n\n"
            for i, m in enumerate(self._messages(body["input"]["text"]))
        )
        return Response(": comment\n\n" + frames, media_type="text/event-stream")

    async def fail(self, request: Request) -> Response:
        await self._body(request)
        return JSONResponse({"error": "down for maintenance"}, status_code=503)

    async def unended(self, request: Request) -> Response:
        await self._body(request)
        return Response('{"op": "output", "output": 1}\n', media_type="application/x-ndjson")

    async def broken(self, request: Request) -> Response:
        await self._body(request)

        async def lines() -> AsyncIterator[bytes]:
            yield b'{"op": "output", "output": "before"}\n'
            raise RuntimeError("the service crashed mid-stream")

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    async def slow(self, request: Request) -> Response:
        await self._body(request)

        async def lines() -> AsyncIterator[bytes]:
            try:
                yield b'{"op": "output", "output": "started"}\n'
                await asyncio.sleep(60)
            finally:
                self.disconnected.set()

        return StreamingResponse(lines(), media_type="application/x-ndjson")


def upstream_service() -> Iterator[Upstream]:
    upstream = Upstream()
    upstream.start()
    yield upstream
    upstream.stop()
