"""Following a session: every event of a conversation's tasks, with one cursor.

A session's log (``session.task``, ``task.event``, ``session.closed``, and
``session.snapshot`` when asked for or when a resume is older than the log keeps) is
followed like a task's (``_follow``): over WebSocket, SSE or NDJSON, reconnecting with
backoff and resuming after the last session ``seq`` yielded, so each session event is
yielded once, in order, until ``session.closed`` (or the snapshot of a closed session).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Sequence
from urllib.parse import quote

import msgspec
from httpx_sse import EventSource, SSEError

from skillwire.protocol import (
    Ended,
    ErrorMessage,
    RateLimited,
    Session,
    SessionEvent,
    SessionEventMessage,
    SessionEventType,
    SessionStatus,
    SkillwireError,
    Subscribed,
    SubscribeOp,
)

from ._errors import (
    TransportError,
    TransportUnavailable,
    error_from_body,
    map_httpx_exceptions,
    undecodable,
)
from ._http import HttpTransport
from ._settings import StreamTransport
from ._ws import SubscriptionEnded, WebSocketSession

__all__ = [
    "SessionFollower",
    "is_session_end",
    "session_events_path",
    "session_path",
]

log = logging.getLogger("skillwire.client")
SESSION_TRANSPORTS: tuple[StreamTransport, ...] = ("ws", "sse", "ndjson")
_decoder = msgspec.json.Decoder(SessionEvent)
_any = msgspec.json.Decoder()
_KNOWN = frozenset(SessionEventType)


def session_path(session_id: str) -> str:
    return f"/api/v1/sessions/{quote(session_id, safe='')}"


def session_events_path(session_id: str) -> str:
    return session_path(session_id) + "/events"


def decode_session_event(data: bytes | str) -> SessionEvent | None:
    """One session event; None for a type this client does not know (a newer server's)."""
    try:
        return _decoder.decode(data)
    except msgspec.ValidationError:
        raw = _any.decode(data)
        kind = raw.get("type") if isinstance(raw, dict) else None
        if isinstance(kind, str) and kind not in _KNOWN:
            return None
        raise


def is_session_end(event: SessionEvent) -> bool:
    """``session.closed``, or the snapshot of a closed session: nothing follows either."""
    if event.type == SessionEventType.SESSION_CLOSED:
        return True
    if event.type == SessionEventType.SESSION_SNAPSHOT and isinstance(event.data, dict):
        session = event.data.get("session")
        return isinstance(session, dict) and session.get("status") == SessionStatus.CLOSED
    return False


async def _sse(
    http: HttpTransport, session_id: str, after: int, snapshot: bool
) -> AsyncGenerator[SessionEvent, None]:
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
    if after:
        headers["Last-Event-ID"] = str(after)
    params = {"snapshot": "true"} if snapshot else None
    async with http.stream(
        session_events_path(session_id),
        params=params,
        headers=headers,
        read_timeout=http.settings.read_timeout,
    ) as response:
        with map_httpx_exceptions():
            try:
                async for message in EventSource(response).aiter_sse():
                    if not message.data:
                        continue
                    try:
                        event = decode_session_event(message.data)
                    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                        raise undecodable("an SSE session event", exc) from exc
                    if event is not None:
                        yield event
            except SSEError as exc:
                raise TransportUnavailable(str(exc), details={"reason": "content-type"}) from exc


async def _ndjson(
    http: HttpTransport, session_id: str, after: int, snapshot: bool
) -> AsyncGenerator[SessionEvent, None]:
    params: dict[str, str | int] = {"after": after}
    if snapshot:
        params["snapshot"] = "true"
    async with http.stream(
        session_events_path(session_id),
        params=params,
        headers={"Accept": "application/x-ndjson"},
        read_timeout=http.settings.read_timeout,
    ) as response:
        media = response.headers.get("content-type", "").partition(";")[0].strip()
        if media != "application/x-ndjson":
            raise TransportUnavailable(
                f"expected application/x-ndjson, got {media!r}", details={"reason": "content-type"}
            )
        with map_httpx_exceptions():
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                try:
                    event = decode_session_event(line)
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    raise undecodable("an NDJSON session event", exc) from exc
                if event is not None:
                    yield event


async def _ws(
    http: HttpTransport, session_id: str, after: int, snapshot: bool
) -> AsyncGenerator[SessionEvent, None]:
    async with await WebSocketSession.open(http.settings) as ws:
        op = SubscribeOp(session_id=session_id, after=after, snapshot=snapshot)
        reply = await ws.request(op)
        if not isinstance(reply, Subscribed):
            raise undecodable("the reply to subscribe", TypeError(type(reply).__name__))
        while True:
            message = await ws.receive()
            if isinstance(message, SessionEventMessage):
                if message.event.session_id == session_id:
                    yield message.event
            elif isinstance(message, ErrorMessage) and message.ref is None:
                raise error_from_body(message.error)
            elif isinstance(message, Ended) and message.session_id == session_id:
                raise SubscriptionEnded(session_id, message.last_seq)


class SessionFollower:
    """Follows sessions over ``transports`` (of ws, sse, ndjson), in order of preference."""

    def __init__(self, http: HttpTransport, transports: Sequence[StreamTransport]) -> None:
        usable = tuple(t for t in transports if t in SESSION_TRANSPORTS)
        if not usable:
            raise ValueError(f"a session is followed over one of {SESSION_TRANSPORTS}")
        self.http = http
        self.settings = http.settings
        self.transports = usable

    def _open(
        self, name: StreamTransport, session_id: str, after: int, snapshot: bool
    ) -> AsyncGenerator[SessionEvent, None]:
        if name == "ws":
            return _ws(self.http, session_id, after, snapshot)
        if name == "sse":
            return _sse(self.http, session_id, after, snapshot)
        return _ndjson(self.http, session_id, after, snapshot)

    async def _ended_by(self, session_id: str, after: int) -> bool:
        """True when the session is closed and its last event is at or before ``after``."""
        try:
            session = await self.http.get(Session, session_path(session_id))
        except SkillwireError:
            return False
        return session.status == SessionStatus.CLOSED and session.last_seq <= after

    async def follow(
        self, session_id: str, after: int = 0, *, snapshot: bool = False
    ) -> AsyncGenerator[SessionEvent, None]:
        """Yield the session's events after ``after`` until ``session.closed``."""
        if after < 0:
            raise ValueError("after must be >= 0")
        last = after
        want_snapshot = snapshot
        index = 0
        failures = 0
        while True:
            name = self.transports[index]
            source = self._open(name, session_id, last, want_snapshot)
            try:
                async with contextlib.aclosing(source):
                    async for event in source:
                        if event.type == SessionEventType.SESSION_SNAPSHOT:
                            if not want_snapshot and event.seq <= last:
                                continue
                            want_snapshot = False
                        elif event.seq <= last:
                            continue  # a replay of what was yielded already
                        last = event.seq
                        failures = 0
                        yield event
                        if is_session_end(event):
                            return
                if await self._ended_by(session_id, last):
                    return
                raise TransportError(
                    "the stream ended before session.closed", details={"transport": name}
                )
            except SubscriptionEnded:
                return
            except TransportUnavailable as exc:
                if index + 1 >= len(self.transports):
                    raise
                index += 1
                log.info("skillwire: %s unavailable (%s); falling back", name, exc.message)
            except SkillwireError as exc:
                if not exc.temporary:
                    raise
                failures += 1
                if failures > self.settings.max_reconnects:
                    raise
                retry_after = (
                    exc.details.get("retry_after") if isinstance(exc, RateLimited) else None
                )
                delay = (
                    float(retry_after)
                    if isinstance(retry_after, int | float) and retry_after > 0
                    else self.settings.backoff.delay(failures - 1)
                )
                log.info(
                    "skillwire: %s stream of session %s dropped (%s); resuming after %d",
                    name,
                    session_id,
                    exc.message,
                    last,
                )
                await asyncio.sleep(delay)
