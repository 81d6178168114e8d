"""SSE and NDJSON: one task's (or one session's) events as a streaming HTTP response.

Each stream is one group of tasks: the subscription (log replay, then live events), the
writer (batches whatever is queued into one write, or a heartbeat after an idle interval),
the disconnect listener and the shutdown listener. The first to finish ends the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from skillwire.protocol import (
    NDJSON_HEARTBEAT,
    SSE_HEARTBEAT,
    BadRequest,
    EncodedEvent,
    SkillwireError,
    sse_retry,
)

from .._accept import accept_quality
from .._links import root_of, rooted_frame
from .._metrics import Tally
from .._params import is_ascii_digits
from .._runtime import Runtime, runtime_of
from ..auth import Permission, Principal, require
from ._outbox import Outbox, OutboxClosed
from ._sources import LogSource
from ._subscription import SlowConsumer, Subscription

__all__ = [
    "EventStreamResponse",
    "events_endpoint",
    "parse_after",
    "parse_snapshot",
    "stream_format",
    "stream_response",
]

log = logging.getLogger("skillwire.streams")
StreamFormat = Literal["sse", "ndjson"]
SSE_RETRY_MS = 2000


def stream_format(request: Request) -> StreamFormat:
    """NDJSON when asked for by Accept (or ``?stream=true``); SSE otherwise."""
    accept = request.headers.get("accept", "")
    # q-values count: "text/event-stream;q=0, application/x-ndjson" asks for NDJSON.
    if accept_quality(accept, "application/x-ndjson") > accept_quality(accept, "text/event-stream"):
        return "ndjson"
    return "sse"


def _non_negative(value: str, name: str) -> int:
    # The same rule for ?after= as for Last-Event-ID (whose surrounding spaces the HTTP
    # parser already dropped): no sign, no space (a "+" in a query string is one), no
    # digits of other scripts.
    if not is_ascii_digits(value):
        raise BadRequest(f"{name} must be a non-negative integer", details={"field": name})
    return int(value)


def parse_after(request: Request) -> int:
    """The seq to resume after: the larger of ``?after=`` and ``Last-Event-ID``."""
    after = 0
    if (raw := request.query_params.get("after")) is not None:
        after = _non_negative(raw, "after")
    if (header := request.headers.get("last-event-id")) is not None and header.strip():
        after = max(after, _non_negative(header, "Last-Event-ID"))
    return after


async def _first_done(*jobs: Callable[[], Coroutine[Any, Any, None]]) -> None:
    tasks: list[asyncio.Task[None]] = [asyncio.create_task(job()) for job in jobs]
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
        # The response has started: nothing is left but to end the stream. The client
        # reconnects and resumes from its last seq (Last-Event-ID / ?after=).
        if isinstance(exc, SkillwireError):
            log.warning("stream ended early: %s", exc.message)
        else:
            log.error("stream failed", exc_info=exc)


class EventStreamResponse(Response):
    """Streams a task's events; ends after the terminal event, on disconnect or shutdown."""

    def __init__(
        self,
        runtime: Runtime,
        task_id: str,
        after: int,
        fmt: StreamFormat,
        *,
        snapshot: bool,
        source: LogSource | None = None,
    ) -> None:
        self.runtime = runtime
        self.task_id = task_id  # or the session's id, with a SessionLog ``source``
        self.source = source
        self.after = after
        self.fmt = fmt
        self.snapshot = snapshot
        media = b"text/event-stream; charset=utf-8" if fmt == "sse" else b"application/x-ndjson"
        self.status_code = 200
        self.background = None
        self.raw_headers = [
            (b"content-type", media),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        runtime = self.runtime
        config = runtime.config
        outbox: Outbox[bytes] = Outbox(config.send_queue)
        frame: Callable[[EncodedEvent], bytes] = rooted_frame(
            (lambda e: e.sse) if self.fmt == "sse" else (lambda e: e.ndjson), root_of(scope)
        )
        heartbeat = SSE_HEARTBEAT if self.fmt == "sse" else NDJSON_HEARTBEAT
        subscription = Subscription(
            runtime.backbone,
            self.task_id,
            self.after,
            outbox=outbox,
            frame=frame,
            snapshot=self.snapshot,
            buffer_limit=config.send_queue,
            source=self.source,
        )
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        if self.fmt == "sse":
            await send(
                {"type": "http.response.body", "body": sse_retry(SSE_RETRY_MS), "more_body": True}
            )

        async def produce() -> None:
            try:
                await subscription.run()
            finally:
                outbox.close()
            await asyncio.Future()  # finished: wait for the writer to drain and end the group

        delivered = Tally(runtime.metrics.events_delivered.labels(self.fmt))

        async def write() -> None:
            while True:
                try:
                    items = await outbox.take(config.heartbeat_interval)
                except OutboxClosed:
                    return
                body = b"".join(items) if items else heartbeat
                await send({"type": "http.response.body", "body": body, "more_body": True})
                if items:
                    delivered.add(len(items))

        async def disconnected() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        async def shutdown() -> None:
            await runtime.shutdown.wait()

        runtime.open_streams += 1
        connections = runtime.metrics.connections.labels(self.fmt)
        connections.inc()
        try:
            await _first_done(produce, write, disconnected, shutdown)
        finally:
            delivered.flush()
            runtime.open_streams -= 1
            connections.dec()
            if outbox.overflowed:
                runtime.metrics.slow_clients.labels(self.fmt).inc()
        # A reader that stopped reading may never take the last chunk: do not wait on it.
        with contextlib.suppress(OSError, RuntimeError, TimeoutError):
            async with asyncio.timeout(1.0):
                await send({"type": "http.response.body", "body": b"", "more_body": False})


async def stream_response(
    request: Request,
    principal: Principal,
    task_id: str,
    fmt: StreamFormat,
    *,
    after: int,
    snapshot: bool = False,
) -> Response:
    runtime = runtime_of(request)
    await runtime.tasks.get(principal, task_id)  # 404 / 410 before any byte is streamed
    return EventStreamResponse(runtime, task_id, after, fmt, snapshot=snapshot)


def parse_snapshot(request: Request) -> bool:
    snapshot = request.query_params.get("snapshot", "false").lower()
    if snapshot not in ("true", "false", "1", "0"):
        raise BadRequest("snapshot must be true or false", details={"field": "snapshot"})
    return snapshot in ("true", "1")


async def events_endpoint(request: Request) -> Response:
    runtime = runtime_of(request)
    principal = await require(request, runtime.keys, Permission.READ, tickets=runtime.backbone)
    after = parse_after(request)
    return await stream_response(
        request,
        principal,
        request.path_params["task_id"],
        stream_format(request),
        after=after,
        snapshot=parse_snapshot(request),
    )
