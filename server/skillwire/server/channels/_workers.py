"""The remote worker channel (``/api/v1/workers/ws``, subprotocol ``skillwire.worker.v1``): the
pump between a worker's WebSocket and its ``WorkerSession``.

The reader hands each frame to the session and waits while the session waits (a work item's
inbox is full): the socket is then not read until the gateway caught up, so a worker that
floods is slowed down, never dropped. Frames to the worker (work, cancel, replies) go through
a bounded outbox and one writer task, as on the client WebSocket. Heartbeats come from the
runtime's timer for all connections, which also closes a worker silent for three heartbeat
intervals (its unfinished work then runs again elsewhere).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from skillwire.protocol import (
    WORKER_SUBPROTOCOL,
    BadRequest,
    CloseCode,
    Unauthorized,
    format_time,
    ws_heartbeat,
)

from .._runtime import Runtime
from ..auth import authenticate, credentials_of
from ._outbox import Outbox
from ._websocket import websocket_refused
from ._worker_session import CloseWorker, WorkerSession

__all__ = ["WORKERS_WS_PATH", "workers_endpoint"]

WORKERS_WS_PATH = "/api/v1/workers/ws"
SILENT_INTERVALS = 3  # heartbeat intervals without a frame after which a worker is lost
WRITER_GRACE = 2.0

log = logging.getLogger("skillwire.workers")


class WorkerConnection:
    __slots__ = (
        "_ended",
        "_ending_cancel",
        "_interval",
        "_receiving",
        "_task",
        "_writer",
        "close_code",
        "close_reason",
        "last_sent",
        "outbox",
        "runtime",
        "session",
        "ws",
    )

    def __init__(self, websocket: WebSocket, runtime: Runtime) -> None:
        self.ws = websocket
        self.runtime = runtime
        self.outbox: Outbox[str] = Outbox(runtime.config.send_queue, on_ready=self._start_writer)
        self.session: WorkerSession | None = None
        self.close_code: int = CloseCode.NORMAL
        self.close_reason = ""
        self.last_sent = time.monotonic()
        self._interval = runtime.config.heartbeat_interval
        self._writer: asyncio.Task[None] | None = None
        self._task: asyncio.Task[Any] | None = None
        self._ended = False
        self._ending_cancel = False
        self._receiving = False  # a frame is being handled (maybe waiting for room)

    def end(self, code: int, reason: str = "") -> None:
        if self._ended:
            return
        self._ended = True
        self.close_code, self.close_reason = code, reason
        task = self._task
        if task is not None and task is not asyncio.current_task():
            self._ending_cancel = True
            task.cancel()

    # -- the runtime's calls ---------------------------------------------------------------
    def heartbeat(self, now: float) -> None:
        session = self.session
        if (
            session is not None
            and not self._receiving
            and now - session.last_heard >= SILENT_INTERVALS * self._interval
        ):
            self.end(CloseCode.GOING_AWAY, "silent for three heartbeat intervals")
            return
        if now - self.last_sent >= self._interval and self._writer is None:
            self.last_sent = now
            self.outbox.push(ws_heartbeat(format_time(time.time())).decode("ascii"))

    def drain(self) -> None:
        self.end(CloseCode.SERVICE_RESTART, "server restarting")

    # -- sending ---------------------------------------------------------------------------
    def send(self, frame: bytes) -> bool:
        if self._ended:
            return False
        if self.outbox.push(frame.decode("utf-8")):
            return True
        self.outbox.close()
        self.end(CloseCode.TRY_AGAIN_LATER, "worker too slow to read")
        return False

    def _start_writer(self) -> None:
        if self._writer is None and not self._ended:
            self._writer = asyncio.create_task(self._write())

    async def _write(self) -> None:
        try:
            while items := self.outbox.take_nowait():
                await self.ws.send_text(items[0] if len(items) == 1 else "\n".join(items))
                self.last_sent = time.monotonic()
        except WebSocketDisconnect:
            self.end(-1)
        except Exception as exc:
            log.error("worker websocket send failed", exc_info=exc)
            self.end(CloseCode.TRY_AGAIN_LATER, "internal error")
        finally:
            self._writer = None

    # -- receiving -------------------------------------------------------------------------
    async def _read(self, session: WorkerSession) -> None:
        limit = self.runtime.config.ws_max_message
        deadline = time.monotonic() + self.runtime.config.ws_auth_timeout
        while not self._ended:
            if session.principal is not None:
                message = await self.ws.receive()
            else:
                try:
                    async with asyncio.timeout(max(deadline - time.monotonic(), 0.0)):
                        message = await self.ws.receive()
                except TimeoutError:
                    raise CloseWorker(
                        CloseCode.UNAUTHENTICATED, "authentication timed out"
                    ) from None
            if message["type"] == "websocket.disconnect":
                return
            text, data = message.get("text"), message.get("bytes")
            size = len(text.encode("utf-8")) if text is not None else len(data or b"")
            if size > limit:
                raise CloseWorker(CloseCode.MESSAGE_TOO_BIG, "message too big")
            if text is None:
                session.error(BadRequest("binary frames are not accepted; send JSON text"))
                continue
            self._receiving = True
            try:
                for line in text.split("\n") if "\n" in text else (text,):
                    if line.strip():
                        await session.receive(line)
            finally:
                self._receiving = False

    async def _open(self, *, rate_limit: bool) -> WorkerSession | None:
        websocket, runtime = self.ws, self.runtime
        if rate_limit and await websocket_refused(runtime, websocket):
            return None
        offered = websocket.scope.get("subprotocols", [])
        chosen = WORKER_SUBPROTOCOL if WORKER_SUBPROTOCOL in offered else None
        await websocket.accept(subprotocol=chosen)
        if runtime.draining:
            await websocket.close(CloseCode.SERVICE_RESTART, "server restarting")
            return None
        session = WorkerSession(runtime.remote, runtime.keys.lookup, self.send)
        handshake = HTTPConnection(websocket.scope)
        if credentials_of(handshake.headers) is not None:  # a key only: workers take no ticket
            try:
                session.authenticate(await authenticate(handshake, runtime.keys))
            except Unauthorized as exc:
                await websocket.close(CloseCode.UNAUTHENTICATED, exc.message[:120])
                return None
            except CloseWorker as exc:
                await websocket.close(exc.code, exc.reason)
                return None
        return session

    async def serve(self, *, rate_limit: bool = False) -> None:
        session = await self._open(rate_limit=rate_limit)
        if session is None:
            return
        self.session = session
        runtime = self.runtime
        task = self._task = asyncio.current_task()
        assert task is not None
        runtime.add_connection(self)
        runtime.metrics.workers_connected.inc()
        try:
            try:
                await self._read(session)
            except asyncio.CancelledError:
                if not self._ending_cancel:
                    self._ended = True
                    raise
                task.uncancel()
            except CloseWorker as exc:
                self.end(exc.code, exc.reason)
            except WebSocketDisconnect:
                self.end(-1)
            except Exception as exc:
                log.error("worker session failed", exc_info=exc)
                self.end(CloseCode.TRY_AGAIN_LATER, "internal error")
            else:
                self.end(CloseCode.NORMAL)
            finally:
                runtime.remove_connection(self)
                session.closed()
                await self._finish_writing()
            if self.close_code != -1 and self.ws.client_state is WebSocketState.CONNECTED:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(1.0):
                        await self.ws.close(self.close_code, self.close_reason)
        finally:
            runtime.metrics.workers_connected.dec()

    async def _finish_writing(self) -> None:
        writer = self._writer
        if writer is None:
            return
        if self.close_code != -1:
            await asyncio.wait({writer}, timeout=WRITER_GRACE)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await writer


async def workers_endpoint(websocket: WebSocket, *, rate_limit: bool = False) -> None:
    """A remote worker's connection, from the handshake to the close. ``rate_limit``: count
    the upgrade against the client rate limit, for a connection that skipped the middleware
    stack (http/_app's shortcut), as the client WebSocket does."""
    await WorkerConnection(websocket, websocket.app.state.skillwire).serve(rate_limit=rate_limit)
