"""A connected remote worker as the dispatcher sees it, and its work items in flight.

What a worker says about one work item waits in a small bounded inbox until the skill side
(``RemoteSkills.run``) relays it: when the inbox is full, the connection's reader waits for
room, so the gateway stops reading that socket and nothing is dropped.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

from skillwire.protocol import WorkerInfo, WorkerMessage, format_time

__all__ = ["INBOX_LIMIT", "Inbox", "RemoteWork", "RemoteWorker", "WorkerLost"]

INBOX_LIMIT = 64  # messages of one work item waiting to be stored before the reader waits


class WorkerLost(Exception):
    """The worker running a work item disconnected or fell silent before it finished."""


def _wake(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


class Inbox:
    """What a worker said about one work item, waiting to be relayed; bounded."""

    __slots__ = ("_items", "_limit", "_reader", "_room", "closed", "lost")

    def __init__(self, limit: int = INBOX_LIMIT) -> None:
        self._items: deque[WorkerMessage] = deque()
        self._limit = limit
        self._reader: asyncio.Future[None] | None = None
        self._room: asyncio.Future[None] | None = None
        self.lost = False
        self.closed = False

    async def put(self, message: WorkerMessage) -> None:
        """Queue a message, waiting while the inbox is full (the socket is not read meanwhile)."""
        while len(self._items) >= self._limit and not self.closed:
            self._room = asyncio.get_running_loop().create_future()
            await self._room
        if not self.closed:
            self._items.append(message)
            _wake(self._reader)

    async def get(self) -> WorkerMessage:
        """The next message; raises ``WorkerLost`` once the worker is gone and none is left."""
        while not self._items:
            if self.lost:
                raise WorkerLost
            self._reader = asyncio.get_running_loop().create_future()
            await self._reader
        message = self._items.popleft()
        _wake(self._room)
        return message

    def lose(self) -> None:
        self.lost = True
        _wake(self._reader)

    def close(self) -> None:
        self.closed = True
        self._items.clear()
        _wake(self._room)


class RemoteWork:
    __slots__ = ("finished", "inbox", "skill", "work_id", "worker")

    def __init__(self, work_id: str, worker: RemoteWorker, skill: str) -> None:
        self.work_id = work_id
        self.worker = worker
        self.skill = skill
        self.inbox = Inbox()
        self.finished = False


class RemoteWorker:
    """One connected worker, as the dispatcher sees it: ``send`` queues a frame to it (False
    when it could not: the connection is going away)."""

    __slots__ = (
        "concurrency",
        "connected_at",
        "last_seen",
        "name",
        "principal",
        "send",
        "skills",
        "work",
        "worker_id",
    )

    def __init__(
        self,
        worker_id: str,
        name: str,
        principal: str,
        concurrency: int,
        send: Callable[[bytes], bool],
    ) -> None:
        self.worker_id = worker_id
        self.name = name
        self.principal = principal
        self.concurrency = concurrency
        self.send = send
        self.skills: list[str] = []
        self.work: dict[str, RemoteWork] = {}
        self.connected_at = time.time()
        self.last_seen = self.connected_at

    @property
    def free(self) -> int:
        return self.concurrency - len(self.work)

    def info(self) -> WorkerInfo:
        return WorkerInfo(
            worker_id=self.worker_id,
            name=self.name,
            principal=self.principal,
            skills=list(self.skills),
            in_flight=len(self.work),
            connected_at=format_time(self.connected_at),
            last_seen=format_time(self.last_seen),
        )
