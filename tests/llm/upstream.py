"""A scriptable OpenAI-compatible upstream: a real HTTP server on 127.0.0.1 for the LLM tests.

It speaks the Chat Completions streaming format with its edge cases: a role-only first chunk,
empty deltas, tool-call arguments split mid-JSON, the usage chunk with empty ``choices``,
``[DONE]``; and, when a test queues a ``Plan`` for a model, a 429 with ``Retry-After``, a 500,
a connection cut mid-stream, a slow first token, or an answer that never ends. It records
every request it got (body, headers, client port) and every client that went away mid-answer.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from tests.conftest import free_port, scaled

USAGE = {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}


@dataclass
class ToolCall:
    id: str
    name: str
    fragments: list[str]  # the arguments as the upstream splits them (mid-JSON)


@dataclass
class Plan:
    """How the upstream answers one request."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    error: str = "scripted failure"
    pieces: list[str] = field(default_factory=lambda: ["Hel", "lo", ", wor", "ld"])
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str = "stop"
    usage: dict[str, int] | None = field(default_factory=lambda: dict(USAGE))
    first_delay: float = 0.0  # seconds between the role-only chunk and the first token
    delay: float = 0.0  # seconds between pieces
    cut_after: int | None = None  # cut the connection after this many pieces
    hang: bool = False  # after the pieces, never finish (for cancel tests)
    done: bool = True  # send [DONE]
    together: bool = False  # send the whole answer in one write (a reader that fell behind)


@dataclass
class Seen:
    body: dict[str, Any]
    headers: dict[str, str]
    port: int


async def _joined(pieces: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield b"".join([piece async for piece in pieces])


class Cut(Exception):
    """Raised inside the body iterator: uvicorn drops the connection mid-body."""


class FakeUpstream:
    def __init__(self, models: tuple[str, ...] = ("alpha", "beta")) -> None:
        self.models = list(models)
        self.plans: dict[str, deque[Plan]] = defaultdict(deque)
        self.requests: list[Seen] = []
        self.disconnects = 0
        self.disconnected_at: list[float] = []
        self.streaming = 0  # answers being streamed right now
        self.models_delay = 0.0  # seconds GET /models takes
        self._lock = threading.Lock()
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # -- scripting ------------------------------------------------------------------------
    def plan(self, model: str, *plans: Plan) -> None:
        with self._lock:
            self.plans[model].extend(plans)

    def _next_plan(self, model: str, body: dict[str, Any]) -> Plan:
        with self._lock:
            queued = self.plans.get(model)
            if queued:
                return queued.popleft()
        # By default: "<model> says: <the last user message>", a word per chunk.
        text = ""
        for message in body.get("messages", []):
            if message.get("role") == "user" and isinstance(message.get("content"), str):
                text = message["content"]
        words = f"{model} says: {text}".split(" ")
        return Plan(pieces=[w if i == 0 else " " + w for i, w in enumerate(words)])

    # -- the app --------------------------------------------------------------------------
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )

    async def _models(self, request: Request) -> Response:
        if self.models_delay:
            await asyncio.sleep(self.models_delay)
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models]
        return JSONResponse({"object": "list", "data": data})

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        client = request.client
        with self._lock:
            self.requests.append(
                Seen(body, dict(request.headers), client.port if client is not None else 0)
            )
        model = body.get("model", "")
        plan = self._next_plan(model, body)
        if plan.status != 200:
            error = {"message": plan.error, "type": "server_error", "param": None, "code": None}
            return JSONResponse({"error": error}, status_code=plan.status, headers=plan.headers)
        if not body.get("stream"):
            return JSONResponse({"error": {"message": "only streaming here"}}, status_code=400)
        answer = self._answer(model, plan)
        return _WatchedStream(self, _joined(answer) if plan.together else answer)

    async def _answer(self, model: str, plan: Plan) -> AsyncIterator[bytes]:
        base = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": model,
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return b"data: " + json.dumps({**base, "choices": [choice]}).encode() + b"\n\n"

        self.streaming += 1
        try:
            yield chunk({"role": "assistant", "content": ""})  # role-only first chunk, at once
            if plan.first_delay:
                await asyncio.sleep(plan.first_delay)
            yield chunk({})  # an empty delta
            for i, piece in enumerate(plan.pieces):
                if plan.cut_after is not None and i >= plan.cut_after:
                    raise Cut
                if plan.delay and i:
                    await asyncio.sleep(plan.delay)
                yield chunk({"content": piece})
            for k, call in enumerate(plan.tool_calls):
                first = {"index": k, "id": call.id, "type": "function"}
                yield chunk(
                    {"tool_calls": [{**first, "function": {"name": call.name, "arguments": ""}}]}
                )
                for fragment in call.fragments:
                    yield chunk({"tool_calls": [{"index": k, "function": {"arguments": fragment}}]})
            if plan.hang:
                await asyncio.sleep(3600)
            yield chunk({}, plan.finish_reason)
            if plan.usage is not None:
                usage = {**base, "choices": [], "usage": plan.usage}
                yield b"data: " + json.dumps(usage).encode() + b"\n\n"
            if plan.done:
                yield b"data: [DONE]\n\n"
        finally:
            self.streaming -= 1

    def _disconnected(self) -> None:
        with self._lock:
            self.disconnects += 1
            self.disconnected_at.append(time.monotonic())

    # -- serving --------------------------------------------------------------------------
    def start(self) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}/v1"
        server = uvicorn.Server(
            uvicorn.Config(
                self.app(),
                host="127.0.0.1",
                port=port,
                log_config=None,
                access_log=False,
                lifespan="off",
            )
        )
        self._server = server

        def run() -> None:
            loop = asyncio.new_event_loop()
            loop.run_until_complete(server.serve())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-upstream", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + scaled(15)
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake upstream did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._server.force_exit = True
            self._thread.join(scaled(15))


def running_upstream(models: tuple[str, ...] = ("alpha", "beta")) -> Iterator[FakeUpstream]:
    upstream = FakeUpstream(models)
    upstream.start()
    try:
        yield upstream
    finally:
        upstream.stop()


class _WatchedStream(Response):
    """An event stream that notices at once when its client goes away (Starlette's own
    StreamingResponse only notices at its next write, and a hanging answer never writes)."""

    def __init__(self, upstream: FakeUpstream, body: AsyncIterator[bytes]) -> None:
        self.upstream = upstream
        self.body_iterator = body
        self.status_code = 200
        self.background = None
        self.raw_headers = [(b"content-type", b"text/event-stream")]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})

        async def stream() -> None:
            async for part in self.body_iterator:
                await send({"type": "http.response.body", "body": part, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        streaming = asyncio.create_task(stream())
        watching = asyncio.create_task(watch())
        done, _ = await asyncio.wait({streaming, watching}, return_when=asyncio.FIRST_COMPLETED)
        if watching in done and not streaming.done():
            self.upstream._disconnected()
            streaming.cancel()
        watching.cancel()
        await asyncio.wait({streaming, watching})
        if not streaming.cancelled() and streaming.exception() is not None:
            raise streaming.exception()  # type: ignore[misc]  # Cut: uvicorn drops the connection
