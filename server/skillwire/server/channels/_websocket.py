"""The WebSocket channel (``/api/v1/ws``, subprotocol ``skillwire.v1``): the pump.

The op rules are the sans-I/O session's (``_ws_session.py``); this pump moves frames between
it and Starlette's WebSocket and carries out its actions against the runtime. A connection
reads ops in the task the server gave it; each followed task has a subscription task. What is
queued in one turn of the loop goes out at its end as one frame of newline-separated messages,
from a callback; a writer task exists only while a send waits for the transport. Heartbeats
come from the runtime's one timer for all connections, so an idle connection holds no timer
(bench scenario C: memory per idle WebSocket). An op error never closes the connection; only
failed authentication (4401), a frame over the limit (1009), a client too slow to keep up
(1013) and a server shutdown (1012) do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine, Generator
from typing import Any

from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from skillwire.protocol import (
    SUBPROTOCOL,
    Accepted,
    CallBody,
    CloseCode,
    EncodedEvent,
    Ended,
    Ok,
    ServerMessage,
    SkillwireError,
    Subscribed,
    Unauthorized,
    UnsupportedVersion,
    encode_server_message,
    format_time,
    ws_heartbeat,
)

from .._links import root_of, rooted_frame
from .._metrics import Tally
from .._runtime import Runtime
from ..auth import authenticate, offers_credentials
from ._outbox import Outbox
from ._sources import LogSource, SessionLog
from ._subscription import Subscription
from ._ws_session import (
    AUTH_TIMED_OUT,
    RESTARTING,
    TOO_SLOW,
    Action,
    Call,
    Cancel,
    Close,
    Reply,
    Subscribe,
    Unsubscribe,
    WebSocketSession,
    error_reply,
)

__all__ = ["WS_PATH", "websocket_endpoint", "websocket_refused"]

WS_PATH = "/api/v1/ws"

log = logging.getLogger("skillwire.ws")

_HEARTBEAT_PREFIX = '{"op":"heartbeat"'
WRITER_GRACE = 5.0  # seconds a closing connection's writer may take to send what is queued


def _ws_text(event: EncodedEvent) -> str:
    return event.ws_text


def _frame_of(items: list[str]) -> str:
    """One text frame for a batch: its messages, newline-separated."""
    return items[0] if len(items) == 1 else "\n".join(items)


class _Started:
    """Awaits the rest of a coroutine that was started outside any task and is suspended on
    ``waiting`` (what it yielded to the event loop): the writer task takes over a send that
    ``_flush`` began and that had to wait for the transport."""

    __slots__ = ("coroutine", "waiting")

    def __init__(self, coroutine: Coroutine[Any, Any, None], waiting: Any) -> None:
        self.coroutine, self.waiting = coroutine, waiting

    def __await__(self) -> Generator[Any, Any, None]:
        coroutine, waiting = self.coroutine, self.waiting
        while True:
            try:
                resumed = yield waiting
            except BaseException as exc:  # cancellation included: the send gets it
                try:
                    waiting = coroutine.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    waiting = coroutine.send(resumed)
                except StopIteration:
                    return


def _ws_ended(task_id: str, last_seq: int) -> str:
    return encode_server_message(Ended(task_id=task_id, last_seq=last_seq)).decode("utf-8")


def _ws_session_ended(session_id: str, last_seq: int) -> str:
    return encode_server_message(Ended(session_id=session_id, last_seq=last_seq)).decode("utf-8")


def _handshake_headers(websocket: WebSocket) -> list[tuple[bytes, bytes]]:
    """The upgrade's answer carries the request id, as every response does (the middleware
    adds it to HTTP responses only: it stays off the path of every WebSocket frame)."""
    state = websocket.scope.get("state")
    request_id = state.get("request_id") if isinstance(state, dict) else None
    return [(b"x-request-id", request_id.encode("latin-1"))] if request_id else []


async def websocket_refused(runtime: Runtime, websocket: WebSocket) -> bool:
    """True when a WebSocket is over its client's limit: it has been accepted and closed with
    1013 (a browser cannot read a refused handshake's status)."""
    decision = await runtime.limits.check_request(websocket.scope, runtime.keys)
    if decision is None or decision.allowed:
        return False
    await websocket.accept(headers=_handshake_headers(websocket))
    await websocket.close(CloseCode.TRY_AGAIN_LATER, "rate limited")
    return True


class WebSocketPump(WebSocketSession):
    """A session on a Starlette WebSocket: reads frames into the session's rules, carries out
    what they decide, and writes what is queued."""

    # Thousands of these sit idle: no per-instance dict.
    __slots__ = (
        "_delivered",
        "_ended",
        "_ending_cancel",
        "_interval",
        "_task",
        "_writer",
        "close_code",
        "close_reason",
        "last_sent",
        "outbox",
        "runtime",
        "subscriptions",
        "ws",
    )

    def __init__(self, websocket: WebSocket, runtime: Runtime) -> None:
        super().__init__()
        self.ws = websocket
        self.runtime = runtime
        self.outbox: Outbox[str] = Outbox(runtime.config.send_queue, on_ready=self._start_writer)
        self.subscriptions: dict[str, asyncio.Task[None]] = {}
        self.close_code: int = CloseCode.NORMAL
        self.close_reason = ""
        self.last_sent = time.monotonic()
        self._interval = runtime.config.heartbeat_interval
        # A Handle while a flush is due at the end of this loop turn, a Task while a send waits.
        self._writer: asyncio.Handle | asyncio.Task[None] | None = None
        self._ended = False
        self._ending_cancel = False  # end() cancelled the connection's task to stop its reader
        self._task: asyncio.Task[Any] | None = None
        self._delivered = Tally(runtime.metrics.events_delivered.labels("ws"))

    def end(self, code: int, reason: str = "") -> None:
        """Close the connection with ``code``; the first reason given is the one that counts."""
        if self._ended:
            return
        self._ended = True
        self.close_code, self.close_reason = code, reason
        task = self._task
        if task is not None and task is not asyncio.current_task():
            # The reader is waiting for a frame in the connection's task: stop it there. Ended
            # from within that task, the reader stops before it reads again.
            self._ending_cancel = True
            task.cancel()

    # -- the runtime's calls -----------------------------------------------------------------
    def heartbeat(self, now: float) -> None:
        if now - self.last_sent >= self._interval and self._writer is None:
            self.last_sent = now
            self.outbox.push(ws_heartbeat(format_time(time.time())).decode("ascii"))

    def drain(self) -> None:
        self.end(*RESTARTING)

    # -- sending -------------------------------------------------------------------------
    def reply(self, message: ServerMessage) -> None:
        if not self.outbox.push(encode_server_message(message).decode("utf-8")):
            self._close(TOO_SLOW)

    def _close(self, close: Close) -> None:
        if close == TOO_SLOW:
            self.outbox.close()  # nothing more is queued for a client that does not read
        self.end(close.code, close.reason)

    def _start_writer(self) -> None:
        # A lone event costs no task: a callback at the end of this turn of the loop sends
        # what was queued in it (one frame for all), and a writer task exists only while a
        # send waits for the transport.
        if self._writer is None and not self._ended:
            self._writer = asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Send what is queued, one frame per batch, without a task while sends complete at
        once; a send that has to wait goes on in a writer task (``_write``)."""
        self._writer = None
        while items := self.outbox.take_nowait():
            send = self.ws.send_text(_frame_of(items))
            try:
                waiting = send.send(None)
            except StopIteration:
                self._sent(items)
                continue
            except BaseException as exc:
                self._send_failed(exc)
                return
            self._writer = asyncio.create_task(self._write(_Started(send, waiting), items))
            return

    async def _write(self, started: _Started | None = None, items: list[str] | None = None) -> None:
        """Finish a send that had to wait (``started``, with the ``items`` it sends), then send
        what is queued until nothing is left."""
        try:
            if started is not None and items is not None:
                await started
                self._sent(items)
            while items := self.outbox.take_nowait():
                await self.ws.send_text(_frame_of(items))
                self._sent(items)
        except Exception as exc:
            self._send_failed(exc)
        finally:
            self._writer = None

    def _sent(self, items: list[str]) -> None:
        self.last_sent = time.monotonic()
        # The metric counts events and replies. A heartbeat is only ever queued into an empty
        # outbox, so it can only open a batch.
        beat = items[0].startswith(_HEARTBEAT_PREFIX)
        self._delivered.add(len(items) - beat)

    def _send_failed(self, exc: BaseException) -> None:
        if isinstance(exc, WebSocketDisconnect):
            self.end(-1)
        elif isinstance(exc, Exception):
            log.error("websocket send failed", exc_info=exc)
            self.end(CloseCode.TRY_AGAIN_LATER, "internal error")
        else:
            raise exc

    # -- receiving -----------------------------------------------------------------------
    async def reader(self) -> None:
        limit, keys = self.runtime.config.ws_max_message, self.runtime.keys
        deadline = time.monotonic() + self.runtime.config.ws_auth_timeout
        while not self._ended:
            if self.principal is not None:
                message = await self.ws.receive()  # no timeout scope held while idle
            else:
                try:
                    async with asyncio.timeout(max(deadline - time.monotonic(), 0.0)):
                        message = await self.ws.receive()
                except TimeoutError:
                    self._close(AUTH_TIMED_OUT)
                    return
            if message["type"] == "websocket.disconnect":
                return
            action = self.receive_frame(
                message.get("text"), message.get("bytes"), limit=limit, keys=keys
            )
            await self.act(action)

    async def act(self, action: Action) -> None:
        """Carry out what the session decided."""
        if isinstance(action, Reply):
            self.reply(action.message)
        elif isinstance(action, Close):
            self._close(action)
        else:
            try:
                await self._run(action)
            except SkillwireError as exc:
                self.reply(error_reply(action.op.ref, exc).message)

    async def _run(self, action: Call | Subscribe | Unsubscribe | Cancel) -> None:
        runtime = self.runtime
        if isinstance(action, Call):
            op, principal = action.op, action.principal
            await runtime.limits.count_op(principal)  # every call op counts, as every request
            if op.version != "1":
                raise UnsupportedVersion(
                    f'version {op.version!r} is not supported; use "1"',
                    details={"field": "version", "supported": ["1"]},
                )
            spec = await runtime.tasks.callable_skill(principal, op.app, op.skill)
            body = CallBody(
                requests=op.requests,
                webhook_url=op.webhook_url,
                metadata=op.metadata,
                session_id=op.session_id,
            )
            result = await runtime.tasks.call(principal, spec, body, channel="ws")
            self.reply(Accepted(task_id=result.task.task_id, ref=op.ref))
            self._follow(result.task.task_id, 0, snapshot=False)
        elif isinstance(action, Subscribe) and action.op.session_id is not None:
            sub, session_id = action.op, action.op.session_id
            session = (await runtime.tasks.sessions.get(action.principal, session_id)).session
            self.reply(
                Subscribed(
                    session_id=session_id,
                    ref=sub.ref,
                    status=session.status,
                    last_seq=session.last_seq,
                )
            )
            source = SessionLog(runtime.backbone, session_id)
            self._follow(session_id, sub.after, snapshot=sub.snapshot, source=source)
        elif isinstance(action, Subscribe):
            sub = action.op
            assert sub.task_id is not None  # the decoder checked that exactly one is given
            task = (await runtime.tasks.get(action.principal, sub.task_id)).task
            self.reply(
                Subscribed(
                    task_id=sub.task_id, ref=sub.ref, status=task.status, last_seq=task.last_seq
                )
            )
            self._follow(sub.task_id, sub.after, snapshot=sub.snapshot)
        elif isinstance(action, Unsubscribe):
            followed = action.op.task_id or action.op.session_id  # exactly one of them
            job = self.subscriptions.pop(followed or "", None)
            if job is not None:
                job.cancel()
            self.reply(Ok(ref=action.op.ref))
        else:
            await runtime.tasks.cancel(action.principal, action.op.task_id, channel="ws")
            self.reply(Ok(ref=action.op.ref))

    def _follow(
        self, task_id: str, after: int, *, snapshot: bool, source: LogSource | None = None
    ) -> None:
        """Follow a task, or with a SessionLog ``source`` the session ``task_id`` names."""
        previous = self.subscriptions.pop(task_id, None)
        if previous is not None:
            previous.cancel()
        subscription = Subscription(
            self.runtime.backbone,
            task_id,
            after,
            outbox=self.outbox,
            frame=rooted_frame(_ws_text, root_of(self.ws.scope)),
            snapshot=snapshot,
            buffer_limit=self.runtime.config.send_queue,
            ended=_ws_ended if source is None else _ws_session_ended,
            source=source,
        )
        # The task runs the subscription itself and a callback handles its ending (no wrapper
        # coroutine, whose frame every idle subscription would hold); the job is named after
        # the task it follows, which the callback needs.
        job = asyncio.create_task(subscription.run(), name=task_id)
        job.add_done_callback(self._subscription_done)
        self.subscriptions[task_id] = job

    def _subscription_done(self, job: asyncio.Task[None]) -> None:
        task_id = job.get_name()
        if self.subscriptions.get(task_id) is job:
            del self.subscriptions[task_id]
        if job.cancelled():
            return
        action = self.subscription_failed(task_id, job.exception())
        if isinstance(action, Reply):
            self.reply(action.message)
        elif isinstance(action, Close):
            self._close(action)

    # -- the connection ------------------------------------------------------------------
    async def _open(self, *, rate_limit: bool) -> bool:
        """The handshake: True once the connection is accepted (and authenticated, when the
        request carried credentials); else it has been refused or closed."""
        websocket, runtime = self.ws, self.runtime
        if rate_limit and await websocket_refused(runtime, websocket):
            return False
        offered = websocket.scope.get("subprotocols", [])
        await websocket.accept(
            subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None,
            headers=_handshake_headers(websocket),
        )
        if runtime.draining:
            await websocket.close(*RESTARTING)
            return False
        # Read from a connection object of its own: the headers and query it parses are
        # garbage once the key is checked, not kept on the WebSocket for the connection's life.
        handshake = HTTPConnection(websocket.scope)
        if offers_credentials(handshake):
            try:
                self.principal = await authenticate(
                    handshake, runtime.keys, tickets=runtime.backbone
                )
            except Unauthorized as exc:
                await websocket.close(CloseCode.UNAUTHENTICATED, exc.message[:120])
                return False
        return True

    async def serve(self, *, rate_limit: bool = False) -> None:
        """Open the connection, read its ops until it ends, then close it.

        The reader runs here, in the connection's own task (one frame, no task of its own:
        thousands of idle connections each hold this, bench scenario C).
        """
        if not await self._open(rate_limit=rate_limit):
            return
        runtime = self.runtime
        task = self._task = asyncio.current_task()
        assert task is not None
        runtime.open_sockets += 1
        runtime.metrics.connections.labels("ws").inc()
        runtime.add_connection(self)
        try:
            try:
                await self.reader()
            except asyncio.CancelledError:
                if not self._ending_cancel:
                    self._ended = True  # nothing may cancel the clean-up below
                    raise  # not ours: whoever cancelled the connection's task stops it
                task.uncancel()
            except WebSocketDisconnect:
                self.end(-1)
            except Exception as exc:
                log.error("websocket session failed", exc_info=exc)
                self.end(CloseCode.TRY_AGAIN_LATER, "internal error")
            else:
                self.end(CloseCode.NORMAL)  # the client closed (or an op ended the connection)
            finally:
                runtime.remove_connection(self)
                await self._stop()
            if self.close_code != -1 and self.ws.client_state is WebSocketState.CONNECTED:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(1.0):
                        await self.ws.close(self.close_code, self.close_reason)
        finally:
            runtime.open_sockets -= 1
            runtime.metrics.connections.labels("ws").dec()
            if self.close_code == CloseCode.TRY_AGAIN_LATER:
                runtime.metrics.slow_clients.labels("ws").inc()

    async def _stop(self) -> None:
        """Stop the subscriptions and let the writer send what is queued, for a while."""
        jobs = list(self.subscriptions.values())
        for job in jobs:
            job.cancel()
        for job in jobs:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await job
        self.subscriptions.clear()
        await self._finish_writing()
        self._delivered.flush()

    async def _finish_writing(self) -> None:
        """Let a send in progress end (the close frame must not cut a frame in two), and what
        is still queued go out, for a while; nothing new is queued once the readers stopped."""
        writer = self._writer
        if isinstance(writer, asyncio.Handle):
            writer.cancel()  # the flush was due: what is queued goes out in a writer task
            self._writer = writer = None
            if self.close_code != -1 and len(self.outbox):
                writer = self._writer = asyncio.create_task(self._write())
        if writer is None:
            return
        if self.close_code != -1:
            await asyncio.wait({writer}, timeout=WRITER_GRACE)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await writer


def websocket_endpoint(
    websocket: WebSocket, *, rate_limit: bool = False
) -> Coroutine[Any, Any, None]:
    """A connection, from the handshake to the close (the coroutine of its session).

    A plain function returning the session's coroutine, so that no frame of its own stays
    alive as long as the connection. ``rate_limit``: apply the client rate limit, for a
    connection that skipped the middleware stack (http/_app); of that stack only the limit
    applies to a WebSocket.
    """
    return WebSocketPump(websocket, websocket.app.state.skillwire).serve(rate_limit=rate_limit)
