"""What interrupts a claim's sub-requests: its task's cancel signal, and their timeouts.

A claim runs its sub-requests inside its one asyncio task (``Run``); both interruptions
cancel that task and are taken back by count, so a stop of the process is told apart.

Timeouts: one timer per distinct limit, not one per running sub-request.

Sub-requests armed with the same limit expire in the order they were armed (the loop's clock
only goes forward), so each limit keeps its waiting sub-requests in an insertion-ordered dict
and one timer handle for the first of them. Arming and disarming are dict operations: an idle
sub-request costs a dict entry, not a timeout scope and a timer handle of its own (about
700 B on uvloop).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..backbone import Claim

__all__ = ["Deadlines", "Expiring", "Lane", "Run"]

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

    __slots__ = ("_lanes", "_loop")

    def __init__(self) -> None:
        self._lanes: dict[float, Lane] = {}  # limits are few: one per skill at most
        self._loop: asyncio.AbstractEventLoop | None = None

    def arm(self, who: Expiring, seconds: float) -> Lane:
        """``who.expire()`` in ``seconds`` unless disarmed first; returns what disarms it."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # A pool started again on another loop (a test client's second lifespan): timers
            # still pending on the old one would never fire here.
            self._lanes, self._loop = {}, loop
        lane = self._lanes.get(seconds)
        if lane is None:
            self._lanes[seconds] = lane = Lane()
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


class Run:
    """One claim in flight: the asyncio task running its requests, and the cancels it made.

    The task's cancel signal (``interrupt``) cancels the claim's own task and counts it in
    ``owed``; the chain takes those back (``settle``) and so tells them from a stop of the
    claim, whose cancel it must never swallow. A request's timeout (``expire``, from the
    pool's ``Deadlines``) cancels it too, and is taken back as the skill's call ends
    (``disarm``), as ``asyncio.timeout`` would: what the request does next (its ending, on a
    backbone whose commands raise a pending cancellation) does not see it.
    """

    __slots__ = ("cancelled", "claim", "job", "lane", "outcome", "owed", "timed_out")

    job: asyncio.Task[None]  # set by the pool right after creating it

    def __init__(self, claim: Claim) -> None:
        self.claim = claim
        self.owed = 0  # the task's cancels of ``job`` not yet taken back
        self.cancelled = False  # the task was cancelled: the chain ends, nothing is requeued
        self.timed_out = False  # the running request's deadline passed
        self.lane: Lane | None = None  # the running request's deadline, while armed
        self.outcome = "discarded"  # how the running request ended (its metric's label)

    def interrupt(self) -> None:
        """The task was cancelled: stop its running request where it waits."""
        if not self.cancelled:
            self.cancelled = True
            self.owed += 1
            self.job.cancel()

    def expire(self) -> None:
        """The running request's time is up."""
        self.lane = None
        self.timed_out = True
        self.job.cancel()

    def arm(self, deadlines: Deadlines, seconds: float) -> None:
        self.timed_out = False
        self.lane = deadlines.arm(self, seconds)

    def disarm(self) -> None:
        """The skill's call ended: its deadline goes, or the cancel of one that passed is
        taken back."""
        if self.lane is not None:
            Deadlines.disarm(self, self.lane)
            self.lane = None
        elif self.timed_out:
            self.job.uncancel()

    def expired(self) -> bool:
        """Whether the CancelledError at hand (after ``disarm``) is the request's timeout
        and nothing else: then the request fails with TIMEOUT."""
        return self.timed_out and not self.cancelled and self.job.cancelling() == 0

    def settle(self) -> bool:
        """Take back the task's cancels; True when nothing else cancelled the claim."""
        while self.owed:
            self.owed -= 1
            self.job.uncancel()
        return self.job.cancelling() == 0
