"""Sub-request timeouts: one timer per distinct limit, not one per running sub-request.

Sub-requests armed with the same limit expire in the order they were armed (the loop's clock
only goes forward), so each limit keeps its waiting sub-requests in an insertion-ordered dict
and one timer handle for the first of them. Arming and disarming are dict operations: an idle
sub-request costs a dict entry, not a timeout scope and a timer handle of its own (about
700 B on uvloop).
"""

from __future__ import annotations

import asyncio
from typing import Protocol

__all__ = ["Deadlines", "Expiring", "Lane"]

# A timer may fire this much before its time (the loop's clock resolution, uvloop's 1 ms):
# what is due within it expires now, instead of a new timer for a fraction of a millisecond.
_RESOLUTION = 0.001


class Expiring(Protocol):
    """What a deadline stops: called once, on the loop, when its time has come."""

    def expire(self) -> None: ...


class Lane:
    """The sub-requests armed with one limit, first to expire first."""

    __slots__ = ("timer", "waiting")

    def __init__(self) -> None:
        self.waiting: dict[Expiring, float] = {}  # in the order armed: deadlines ascending
        self.timer: asyncio.TimerHandle | None = None


class Deadlines:
    """The timeouts of one worker pool's sub-requests (all on one event loop)."""

    __slots__ = ("_lanes",)

    def __init__(self) -> None:
        self._lanes: dict[float, Lane] = {}  # limits are few: one per skill at most

    def arm(self, who: Expiring, seconds: float) -> Lane:
        """``who.expire()`` in ``seconds`` unless disarmed first; returns what disarms it."""
        lane = self._lanes.get(seconds)
        if lane is None:
            self._lanes[seconds] = lane = Lane()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        lane.waiting[who] = deadline
        if lane.timer is None:
            lane.timer = loop.call_at(deadline, self._due, lane)
        return lane

    @staticmethod
    def disarm(who: Expiring, lane: Lane) -> None:
        # The lane's timer stays: when it fires it finds the next deadline and waits for it.
        lane.waiting.pop(who, None)

    def _due(self, lane: Lane) -> None:
        lane.timer = None
        loop = asyncio.get_running_loop()
        now = loop.time() + _RESOLUTION
        expired: list[Expiring] = []
        for who, deadline in lane.waiting.items():
            if deadline > now:
                break
            expired.append(who)
        for who in expired:
            del lane.waiting[who]
        if lane.waiting:
            lane.timer = loop.call_at(next(iter(lane.waiting.values())), self._due, lane)
        for who in expired:
            who.expire()
