"""Following tasks over the WebSocket channel (``/api/v1/ws``, subprotocol ``skillwire.v1``).

A ``WebSocketSession`` wraps one connection: it sends ops, splits each server frame on
newlines (a frame may carry several messages), decodes them with the protocol's union and
hands them out one at a time. Heartbeats are consumed here; a connection silent for three
heartbeat intervals raises ``TransportTimeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import AsyncGenerator
from types import TracebackType

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from skillwire.protocol import (
    SUBPROTOCOL,
    Accepted,
    CallOp,
    ClientMessage,
    Ended,
    ErrorMessage,
    Event,
    EventMessage,
    ServerMessage,
    Subscribed,
    SubscribeOp,
    decode_server_message,
    encode_client_message,
)

from ._errors import TransportUnavailable, error_from_body, map_ws_exceptions, undecodable
from ._events import is_unknown_event
from ._settings import Settings

__all__ = ["SubscriptionEnded", "WebSocketSession", "ws_events"]


_KNOWN_OPS = frozenset(
    {
        "accepted",
        "subscribed",
        "ok",
        "pong",
        "authenticated",
        "event",
        "ended",
        "heartbeat",
        "error",
    }
)


class SubscriptionEnded(Exception):
    """The server's ``ended``: the task finished at or before the seq subscribed after, so its
    terminal event will not come; nothing more will."""

    def __init__(self, task_id: str, last_seq: int) -> None:
        super().__init__(f"task {task_id} ended at seq {last_seq}")
        self.task_id = task_id
        self.last_seq = last_seq


def _decode(line: str | bytes) -> ServerMessage | None:
    """One server message; None for an op, or an event type, this client does not know (a
    newer server's)."""
    try:
        return decode_server_message(line)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        try:
            raw = msgspec.json.decode(line)
        except msgspec.DecodeError:
            raw = None
        if isinstance(raw, dict):
            op = raw.get("op")
            if isinstance(op, str) and op not in _KNOWN_OPS:
                return None
            if op == "event" and is_unknown_event(raw.get("event")):
                return None
        raise undecodable("a WebSocket message", exc) from exc


class WebSocketSession:
    """One WebSocket connection to skillwire, authenticated by the key's header."""

    def __init__(self, connection: ClientConnection, read_timeout: float) -> None:
        self._connection = connection
        self._read_timeout = read_timeout
        self._inbox: deque[ServerMessage] = deque()
        self._refs = itertools.count(1)

    @classmethod
    async def open(cls, settings: Settings) -> WebSocketSession:
        with map_ws_exceptions(opening=True):
            connection = await connect(
                settings.websocket_url,
                subprotocols=[Subprotocol(SUBPROTOCOL)],
                additional_headers=settings.auth_headers(),
                open_timeout=settings.timeout,
                close_timeout=min(settings.timeout, 2.0),
                max_size=None,
            )
        if connection.subprotocol != SUBPROTOCOL:
            await connection.close()
            raise TransportUnavailable(
                f"the server did not speak {SUBPROTOCOL}", details={"reason": "subprotocol"}
            )
        return cls(connection, settings.read_timeout)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._connection.close()

    async def __aenter__(self) -> WebSocketSession:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def next_ref(self) -> str:
        return f"r{next(self._refs)}"

    async def send(self, op: ClientMessage) -> None:
        with map_ws_exceptions():
            await self._connection.send(encode_client_message(op).decode("utf-8"))

    async def receive(self) -> ServerMessage:
        """The next message from the server (heartbeats included)."""
        while not self._inbox:
            with map_ws_exceptions():
                async with asyncio.timeout(self._read_timeout):
                    frame = await self._connection.recv()
            # One message per line; split on "\n" only (JSON may hold a raw U+2028).
            lines: list[str] | list[bytes] = (
                frame.split(b"\n") if isinstance(frame, bytes) else frame.split("\n")
            )
            for line in lines:
                if line.strip():
                    message = _decode(line)
                    if message is not None:
                        self._inbox.append(message)
        return self._inbox.popleft()

    async def request(self, op: CallOp | SubscribeOp) -> ServerMessage:
        """Send an op with a fresh ``ref`` and return its reply; an ``error`` reply raises.

        Other messages that arrive first (events of a task followed already) are kept, in
        order, for ``receive``.
        """
        op.ref = self.next_ref()
        await self.send(op)
        held: list[ServerMessage] = []
        try:
            while True:
                message = await self.receive()
                if getattr(message, "ref", None) != op.ref or isinstance(message, EventMessage):
                    held.append(message)
                    continue
                if isinstance(message, ErrorMessage):
                    raise error_from_body(message.error)
                return message
        finally:
            self._inbox.extendleft(reversed(held))

    async def call(self, op: CallOp) -> str:
        """Start a call (the ``call`` op); returns the task id it was accepted as."""
        reply = await self.request(op)
        if not isinstance(reply, Accepted):
            raise undecodable("the reply to call", TypeError(type(reply).__name__))
        return reply.task_id

    async def subscribe(self, task_id: str, after: int, *, snapshot: bool = False) -> None:
        reply = await self.request(SubscribeOp(task_id=task_id, after=after, snapshot=snapshot))
        if not isinstance(reply, Subscribed):
            raise undecodable("the reply to subscribe", TypeError(type(reply).__name__))

    async def events(self, task_id: str) -> AsyncGenerator[Event, None]:
        """The events of ``task_id`` as they arrive; a subscription error (no ref) raises,
        and so does ``ended`` (SubscriptionEnded)."""
        while True:
            message = await self.receive()
            if isinstance(message, EventMessage):
                if message.event.task_id == task_id:
                    yield message.event
            elif isinstance(message, ErrorMessage) and message.ref is None:
                raise error_from_body(message.error)
            elif isinstance(message, Ended) and message.task_id == task_id:
                raise SubscriptionEnded(message.task_id, message.last_seq)


async def ws_events(
    settings: Settings, task_id: str, after: int, *, snapshot: bool = False
) -> AsyncGenerator[Event, None]:
    """One WebSocket connection: ``subscribe`` with ``after``, then the task's events."""
    async with await WebSocketSession.open(settings) as session:
        await session.subscribe(task_id, after, snapshot=snapshot)
        async for event in session.events(task_id):
            yield event
