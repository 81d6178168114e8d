"""Following a task over Server-Sent Events (httpx-sse decodes the stream)."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import msgspec
from httpx_sse import EventSource, SSEError

from skillwire.protocol import Event

from ._errors import TransportUnavailable, map_httpx_exceptions, undecodable
from ._events import decode_known_event, events_path
from ._http import HttpTransport

__all__ = ["sse_events"]


async def sse_events(
    http: HttpTransport, task_id: str, after: int, *, snapshot: bool = False
) -> AsyncGenerator[Event, None]:
    """One SSE connection: the task's events after ``after`` (resumed with Last-Event-ID).

    Comments (heartbeats) and the ``retry:`` field are consumed by the decoder; a silence of
    three heartbeat intervals raises ``TransportTimeout``.
    """
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
    if after:
        headers["Last-Event-ID"] = str(after)
    params = {"snapshot": "true"} if snapshot else None
    async with http.stream(
        events_path(task_id),
        params=params,
        headers=headers,
        read_timeout=http.settings.read_timeout,
    ) as response:
        source = EventSource(response)
        with map_httpx_exceptions():
            try:
                messages = source.aiter_sse()
                async for message in messages:
                    if not message.data:
                        continue  # e.g. the opening `retry:` field
                    try:
                        event = decode_known_event(message.data)
                    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                        raise undecodable("an SSE event", exc) from exc
                    if event is not None:  # None: a type this client does not know
                        yield event
            except SSEError as exc:  # not an event stream: a proxy or an old server
                raise TransportUnavailable(str(exc), details={"reason": "content-type"}) from exc
