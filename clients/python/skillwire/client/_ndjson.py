"""Following a task over NDJSON: one event per line, an empty line as heartbeat."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import msgspec

from skillwire.protocol import Event

from ._errors import TransportUnavailable, map_httpx_exceptions, undecodable
from ._events import decode_known_event, events_path
from ._http import HttpTransport

__all__ = ["ndjson_events"]

MEDIA_TYPE = "application/x-ndjson"


async def ndjson_events(
    http: HttpTransport, task_id: str, after: int, *, snapshot: bool = False
) -> AsyncGenerator[Event, None]:
    """One NDJSON connection: the task's events after ``after`` (``?after=``)."""
    params: dict[str, str | int] = {"after": after}
    if snapshot:
        params["snapshot"] = "true"
    async with http.stream(
        events_path(task_id),
        params=params,
        headers={"Accept": MEDIA_TYPE},
        read_timeout=http.settings.read_timeout,
    ) as response:
        media = response.headers.get("content-type", "").partition(";")[0].strip()
        if media != MEDIA_TYPE:
            raise TransportUnavailable(
                f"expected {MEDIA_TYPE}, got {media!r}", details={"reason": "content-type"}
            )
        with map_httpx_exceptions():
            async for line in response.aiter_lines():
                if not line.strip():
                    continue  # heartbeat
                try:
                    event = decode_known_event(line)
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    raise undecodable("an NDJSON event", exc) from exc
                if event is not None:  # None: a type this client does not know
                    yield event
