"""The OpenAI-compatible front door: ``/v1/chat/completions``, its resumable stream, ``/v1/models``.

A completion is a task of ``llm/chat`` with one request; its id comes back in the
``Skillwire-Task-Id`` header of every answer. A streamed answer is the task's events turned into
``chat.completion.chunk`` frames, each SSE frame carrying ``id: <seq>`` of the event it came
from, so ``GET /v1/chat/completions/{task_id}/stream`` with ``Last-Event-ID`` picks it up where
it broke while the generation goes on server-side.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from skillwire.protocol import (
    BadRequest,
    CallBody,
    EncodedEvent,
    Forbidden,
    NotFound,
    SkillwireError,
    encode,
    lifecycle,
    parse_time,
    to_builtins,
    validate,
)

from .._runtime import Runtime
from ..auth import Permission, Principal
from ..channels import SlowConsumer, Subscription
from ..channels._outbox import Outbox, OutboxClosed
from ..channels._streams import parse_after
from ..llm import ChatInput, LlmBridge
from ..llm._openai import DONE, ChunkTranslator, completion_of, openai_error_type
from ._auth import require, runtime_of
from ._body import read_json
from ._middleware import request_id_of
from ._responses import JSONResponse

__all__ = ["openai_routes"]

log = logging.getLogger("skillwire.llm")

TASK_ID_HEADER = "Skillwire-Task-Id"
# Body fields of OpenAI's that are the front door's, not the request's.
_FRONT_DOOR_FIELDS = ("stream", "stream_options", "metadata", "store", "service_tier")
_decoder = msgspec.json.Decoder()
SSE_HEARTBEAT = b": heartbeat\n\n"
PAGE = 500


class StreamOptions(msgspec.Struct):
    include_usage: bool = False


class FrontDoor(msgspec.Struct):
    """The front door's own fields of a Chat Completions body."""

    stream: bool | None = False
    stream_options: StreamOptions | None = None


def bridge_of(request: Request) -> LlmBridge:
    bridge: LlmBridge | None = runtime_of(request).llm
    if bridge is None:
        raise NotFound("no LLM upstream is configured", details={"app": "llm"})
    return bridge


def _created(task: Any) -> int:
    return int(parse_time(task.created_at))


def _completion_id(task_id: str) -> str:
    return "chatcmpl-" + task_id.removeprefix("tsk_")


async def _principal(request: Request, permission: Permission) -> Principal:
    principal = await require(request, permission)
    if not principal.may_call("llm", "chat"):
        raise Forbidden("this key may not call llm/chat", details={"skill": "llm.chat"})
    return principal


async def chat_completions(request: Request) -> Response:
    principal = await _principal(request, Permission.CALL)
    runtime = runtime_of(request)
    bridge = bridge_of(request)
    raw = await read_json(request, runtime.config.max_body)
    if not isinstance(raw, dict):
        raise BadRequest("the body must be a JSON object")
    door = validate({k: raw[k] for k in ("stream", "stream_options") if k in raw}, FrontDoor)
    body = {k: v for k, v in raw.items() if k not in _FRONT_DOOR_FIELDS}
    chat = validate(body, ChatInput)
    route = await bridge.resolve(chat.model)  # 404 for an unknown model before any task
    include_usage = bool(door.stream_options and door.stream_options.include_usage)
    metadata = {"openai": {"model": chat.model, "include_usage": include_usage}}
    spec = runtime.registry.get("llm", "chat")
    result = await runtime.tasks.call(
        principal,
        spec,
        CallBody(requests=[body], metadata=metadata),
        channel="openai-sse" if door.stream else "openai",
        idempotency_key=request.headers.get("idempotency-key"),
        audit_fields={"model": route.name},
    )
    task = result.task
    headers = {TASK_ID_HEADER: task.task_id}
    translator = ChunkTranslator(
        _completion_id(task.task_id), chat.model, _created(task), include_usage
    )
    if door.stream:
        return ChunkStreamResponse(runtime, task.task_id, 0, translator, headers)
    while task.status not in lifecycle.TERMINAL_TASK_STATUSES:
        task = await runtime.tasks.wait(principal, task.task_id, 3600)
    return _final_answer(to_builtins(task), translator, headers, request_id_of(request.scope))


def _final_answer(
    task: dict[str, Any],
    translator: ChunkTranslator,
    headers: dict[str, str],
    request_id: str | None,
) -> Response:
    request = task["requests"][0]
    if task["status"] == "completed":
        answer = completion_of(task, translator.completion_id, translator.model, translator.created)
        return JSONResponse(answer, headers=headers)
    if task["status"] == "cancelled":
        error = {"code": "CANCELLED", "message": "the task was cancelled", "details": {}}
        status = 409
    else:
        error = request.get("error") or {"code": "INTERNAL_ERROR", "message": "failed"}
        status = 502 if error.get("code") == "UPSTREAM_ERROR" else 500
    body = {
        "error": {
            **error,
            "details": error.get("details") or {},
            "request_id": request_id,
            "type": openai_error_type(status),
            "param": None,
        }
    }
    # The SDKs retry a 5xx on their own; the bridge has already retried what could be.
    return JSONResponse(body, status_code=status, headers={**headers, "x-should-retry": "false"})


async def resume_stream(request: Request) -> Response:
    """``GET /v1/chat/completions/{task_id}/stream``: the chunks after ``Last-Event-ID``."""
    principal = await _principal(request, Permission.READ)
    runtime = runtime_of(request)
    task_id = request.path_params["task_id"]
    after = parse_after(request)
    task = (await runtime.tasks.get(principal, task_id)).task
    if task.app != "llm" or task.skill != "chat":
        raise NotFound(f"task {task_id} is not a chat completion", details={"task_id": task_id})
    options = task.metadata.get("openai") if isinstance(task.metadata, dict) else None
    options = options if isinstance(options, dict) else {}
    model = str(options.get("model") or "llm/chat")
    translator = ChunkTranslator(
        _completion_id(task_id), model, _created(task), bool(options.get("include_usage"))
    )
    await _replay_until(runtime, translator, task_id, after)
    return ChunkStreamResponse(runtime, task_id, after, translator, {TASK_ID_HEADER: task_id})


async def _replay_until(
    runtime: Runtime, translator: ChunkTranslator, task_id: str, after: int
) -> None:
    """Feed the events a client already had (seq <= after), dropping their chunks."""
    last = 0
    while last < after:
        page = await runtime.backbone.read_events(task_id, last, min(PAGE, after - last))
        if page is None or not page.events:
            return
        for event in page.events:
            if event.seq > after:
                return
            translator.feed(_decoder.decode(event.json))
            last = event.seq


class _Delta(msgspec.Struct):
    output: int = -1
    field: str = ""
    append: str = ""


class _DeltaEvent(msgspec.Struct):
    """The fields of a ``request.delta`` event the fast path reads."""

    index: int | None = None
    data: _Delta | None = None


_delta_decoder = msgspec.json.Decoder(_DeltaEvent)


def _frames(translator: ChunkTranslator, event: EncodedEvent) -> bytes:
    if event.type == "request.delta":  # one per token: decoded into a Struct, framed by template
        delta = _delta_decoder.decode(event.json)
        data = delta.data
        if delta.index == translator.index and data is not None and data.field == "text":
            framed = translator.text_frame(event.seq, data.output, data.append)
            if framed is not None:
                return framed
    chunks, _ = translator.feed(_decoder.decode(event.json))
    if not chunks:
        return b""
    head = b"id: %d\ndata: " % event.seq
    return b"".join(
        head + (b"[DONE]" if chunk is DONE else encode(chunk)) + b"\n\n" for chunk in chunks
    )


class ChunkStreamResponse(Response):
    """A task's events as ``chat.completion.chunk`` SSE frames, until the answer ends."""

    def __init__(
        self,
        runtime: Runtime,
        task_id: str,
        after: int,
        translator: ChunkTranslator,
        headers: dict[str, str],
    ) -> None:
        self.runtime = runtime
        self.task_id = task_id
        self.after = after
        self.translator = translator
        self.status_code = 200
        self.background = None
        self.raw_headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
            *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        runtime = self.runtime
        config = runtime.config
        translator = self.translator
        outbox: Outbox[bytes] = Outbox(config.send_queue)
        subscription = Subscription(
            runtime.backbone,
            self.task_id,
            self.after,
            outbox=outbox,
            frame=lambda event: _frames(translator, event),
            buffer_limit=config.send_queue,
        )
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        if translator.ended:  # a resume after the end: the client missed at most [DONE]
            body = b"id: %d\ndata: [DONE]\n\n" % self.after
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return

        async def produce() -> None:
            try:
                await subscription.run()
            finally:
                outbox.close()
            await asyncio.Future()  # finished: the writer drains the rest and ends the group

        async def write() -> None:
            # The translator reads events as they are queued: once it has ended the answer,
            # what is still queued is the last of it.
            while not (translator.ended and not outbox):
                try:
                    items = await outbox.take(config.heartbeat_interval)
                except OutboxClosed:
                    return
                body = b"".join(items) if items else SSE_HEARTBEAT
                if body:
                    await send({"type": "http.response.body", "body": body, "more_body": True})

        async def disconnected() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        async def shutdown() -> None:
            await runtime.shutdown.wait()

        runtime.open_streams += 1
        connections = runtime.metrics.connections.labels("openai")
        connections.inc()
        try:
            await _first_done(produce, write, disconnected, shutdown)
        finally:
            runtime.open_streams -= 1
            connections.dec()
        with contextlib.suppress(OSError, RuntimeError, TimeoutError):
            async with asyncio.timeout(1.0):
                await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _first_done(*jobs: Callable[[], Coroutine[Any, Any, None]]) -> None:
    tasks = [asyncio.create_task(job()) for job in jobs]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    for task in done:
        exc = None if task.cancelled() else task.exception()
        if exc is None or isinstance(exc, (SlowConsumer, OutboxClosed)):
            continue
        if isinstance(exc, SkillwireError):
            log.warning("chunk stream ended early: %s", exc.message)
        else:
            log.error("chunk stream failed", exc_info=exc)


async def list_models(request: Request) -> Response:
    await require(request, Permission.READ)
    bridge = bridge_of(request)
    now = int(time.time())
    items = [
        {"id": route.name, "object": "model", "created": now, "owned_by": route.upstream.name}
        for route in await bridge.models()
    ]
    return JSONResponse({"object": "list", "data": items})


def openai_routes() -> list[BaseRoute]:
    return [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/chat/completions/{task_id}/stream", resume_stream, methods=["GET"]),
        Route("/v1/models", list_models, methods=["GET"]),
    ]
