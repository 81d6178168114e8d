"""A connection's bounded send queue.

Live events are pushed without waiting (``push``); a connection whose queue is full is a
client that stopped reading, and is marked ``overflowed`` so its channel can close it (WS
1013, SSE/NDJSON end of stream) instead of growing memory. Replays wait for room (``put``),
because they are paced by the reader, never by a producer.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

__all__ = ["Outbox", "OutboxClosed"]


class OutboxClosed(Exception):
    """The outbox was closed (overflow or end of stream) and everything queued was taken."""


Item = TypeVar("Item", bytes, str)


class Outbox(Generic[Item]):
    """Frames for one connection: bytes for SSE/NDJSON, str for WebSocket text frames."""

    __slots__ = ("_items", "_limit", "_ready", "_room", "closed", "overflowed")

    def __init__(self, limit: int) -> None:
        self._items: deque[Item] = deque()
        self._limit = limit
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
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
        self._items.append(data)
        self._ready.set()
        if len(self._items) >= self._limit:
            self._room.clear()
        return True

    async def put(self, data: Item) -> None:
        """Queue ``data``, waiting while the outbox is full."""
        while len(self._items) >= self._limit and not self.closed:
            self._room.clear()
            await self._room.wait()
        if self.closed:
            raise OutboxClosed
        self._items.append(data)
        self._ready.set()

    def close(self) -> None:
        self.closed = True
        self._ready.set()
        self._room.set()

    async def take(self, timeout: float) -> list[Item]:
        """Everything queued (at least one item), or [] after ``timeout`` seconds of nothing."""
        if not self._items:
            if self.closed:
                raise OutboxClosed
            self._ready.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self._ready.wait()
            except TimeoutError:
                return []
            if not self._items:
                raise OutboxClosed
        items = list(self._items)
        self._items.clear()
        self._room.set()
        return items
