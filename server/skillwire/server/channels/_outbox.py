"""A connection's bounded send queue.

Live events are pushed without waiting (``push``); a connection whose queue is full is a
client that stopped reading, and is marked ``overflowed`` so its channel can close it (WS
1013, SSE/NDJSON end of stream) instead of growing memory. Replays wait for room (``put``),
because they are paced by the reader, never by a producer.

Thousands of connections sit idle with an empty outbox, so it keeps no synchronisation
objects of its own: a future exists only while someone waits on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Outbox", "OutboxClosed"]


class OutboxClosed(Exception):
    """The outbox was closed (overflow or end of stream) and everything queued was taken."""


Item = TypeVar("Item", bytes, str)


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class Outbox(Generic[Item]):
    """Frames for one connection: bytes for SSE/NDJSON, str for WebSocket text frames.

    ``on_ready`` is called after each queued item: a connection that sends from a task it
    starts on demand (WebSocket) uses it instead of a writer waiting in ``take``.
    """

    __slots__ = ("_items", "_limit", "_on_ready", "_ready", "_room", "closed", "overflowed")

    def __init__(self, limit: int, on_ready: Callable[[], None] | None = None) -> None:
        self._items: list[Item] = []  # a list, not a deque: empty it costs 56 bytes, not 600
        self._limit = limit
        self._on_ready = on_ready
        self._ready: asyncio.Future[None] | None = None  # a take() waiting for items
        self._room: asyncio.Future[None] | None = None  # put()s waiting for room
        self.closed = False
        self.overflowed = False

    def __len__(self) -> int:
        return len(self._items)

    def push(self, data: Item) -> bool:
        """Queue ``data`` now; False (and the outbox closes) when the reader is too far behind."""
        if self.closed:
            return False
        if len(self._items) >= self._limit:
            self.overflowed = True
            self.close()
            return False
        self._queued(data)
        return True

    async def put(self, data: Item) -> None:
        """Queue ``data``, waiting while the outbox is full."""
        while len(self._items) >= self._limit and not self.closed:
            if self._room is None or self._room.done():
                self._room = asyncio.get_running_loop().create_future()
            await self._room
        if self.closed:
            raise OutboxClosed
        self._queued(data)

    def _queued(self, data: Item) -> None:
        self._items.append(data)
        _wake(self._ready)
        if self._on_ready is not None:
            self._on_ready()

    def close(self) -> None:
        self.closed = True
        _wake(self._ready)
        _wake(self._room)

    def take_nowait(self) -> list[Item]:
        """Everything queued, possibly nothing."""
        items, self._items = self._items, []
        _wake(self._room)
        return items

    async def take(self, timeout: float) -> list[Item]:
        """Everything queued (at least one item), or [] after ``timeout`` seconds of nothing."""
        if not self._items:
            if self.closed:
                raise OutboxClosed
            self._ready = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(timeout):
                    await self._ready
            except TimeoutError:
                return []
            finally:
                self._ready = None
            if not self._items:
                raise OutboxClosed
        return self.take_nowait()
