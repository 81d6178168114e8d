"""Framing of events as SSE, NDJSON and WebSocket messages.

An event is serialised to JSON once (``EncodedEvent.json``); each frame type is built from
those bytes on first use and cached, so every subscriber of a channel gets the same bytes.
"""

from __future__ import annotations

from ._codec import encode
from ._lifecycle import TASK_TERMINAL_EVENTS
from ._models import Event

__all__ = [
    "NDJSON_HEARTBEAT",
    "SSE_HEARTBEAT",
    "TERMINAL_EVENT_TYPES",
    "EncodedEvent",
    "sse_retry",
    "ws_heartbeat",
]

SSE_HEARTBEAT = b": heartbeat\n\n"
NDJSON_HEARTBEAT = b"\n"

# The event types that end a task's stream, as strings (one definition, from the lifecycle).
TERMINAL_EVENT_TYPES = frozenset(t.value for t in TASK_TERMINAL_EVENTS.values())


def sse_retry(milliseconds: int) -> bytes:
    """The ``retry:`` field the SSE stream opens with."""
    return b"retry: %d\n\n" % milliseconds


def ws_heartbeat(time: str) -> bytes:
    return b'{"op":"heartbeat","time":"' + time.encode("ascii") + b'"}'


class EncodedEvent:
    """An event's JSON bytes with its ``seq`` and ``type``, and its frames built on demand.

    ``terminal`` (the event ends its task's stream) follows from the type, by the lifecycle's
    table: whoever decodes an event from storage passes only what was stored.
    """

    __slots__ = ("_ndjson", "_sse", "_ws", "_ws_text", "json", "seq", "terminal", "type")

    def __init__(self, seq: int, type: str, json: bytes) -> None:
        self.seq = seq
        self.type = type
        self.json = json
        self.terminal = type in TERMINAL_EVENT_TYPES
        self._sse: bytes | None = None
        self._ndjson: bytes | None = None
        self._ws: bytes | None = None
        self._ws_text: str | None = None

    @classmethod
    def of(cls, event: Event) -> EncodedEvent:
        return cls(event.seq, event.type, encode(event))

    @property
    def sse(self) -> bytes:
        if self._sse is None:
            self._sse = b"id: %d\nevent: %s\ndata: %s\n\n" % (
                self.seq,
                self.type.encode("ascii"),
                self.json,
            )
        return self._sse

    @property
    def ndjson(self) -> bytes:
        if self._ndjson is None:
            self._ndjson = self.json + b"\n"
        return self._ndjson

    @property
    def ws(self) -> bytes:
        if self._ws is None:
            self._ws = b'{"op":"event","event":' + self.json + b"}"
        return self._ws

    @property
    def ws_text(self) -> str:
        """The WebSocket message as text (ASGI text frames take str): decoded once, shared."""
        if self._ws_text is None:
            self._ws_text = self.ws.decode("utf-8")
        return self._ws_text

    def __repr__(self) -> str:
        return f"EncodedEvent(seq={self.seq}, type={self.type!r})"
