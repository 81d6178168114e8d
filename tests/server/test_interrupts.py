"""Sub-request timeouts: one timer per limit, each armed request expiring once, in order."""

from __future__ import annotations

import asyncio

from skillwire.server.engine._interrupts import Deadlines
from tests.conftest import scaled


class _Request:
    def __init__(self, name: str, expired: list[str], done: asyncio.Event) -> None:
        self.name = name
        self._expired = expired
        self._done = done

    def expire(self) -> None:
        self._expired.append(self.name)
        if self.name == "last":
            self._done.set()


async def test_requests_expire_once_each_in_deadline_order_across_limits() -> None:
    """Armed under two limits, requests expire in their deadlines' order, each once."""
    deadlines = Deadlines()
    expired: list[str] = []
    done = asyncio.Event()
    deadlines.arm(_Request("a", expired, done), 0.02)
    deadlines.arm(_Request("last", expired, done), 0.06)
    deadlines.arm(_Request("b", expired, done), 0.02)
    await asyncio.wait_for(done.wait(), scaled(5))
    assert expired == ["a", "b", "last"]


async def test_a_disarmed_request_never_expires_and_the_next_still_does() -> None:
    """Disarming the first request of a limit leaves the ones armed after it on time."""
    deadlines = Deadlines()
    expired: list[str] = []
    done = asyncio.Event()
    first = _Request("first", expired, done)
    lane = deadlines.arm(first, 0.02)
    deadlines.arm(_Request("last", expired, done), 0.02)
    Deadlines.disarm(first, lane)
    Deadlines.disarm(first, lane)  # twice: a request disarmed after it expired
    await asyncio.wait_for(done.wait(), scaled(5))
    assert expired == ["last"]


def test_deadlines_used_again_on_another_loop_still_expire() -> None:
    """A limit whose timer was still pending when its loop ended does not keep the requests
    armed with it on the next loop from expiring: a pool started again keeps its timeouts."""

    async def first() -> None:
        deadlines.arm(_Request("gone", [], asyncio.Event()), 0.05)  # ends before it fires

    async def second() -> list[str]:
        expired: list[str] = []
        done = asyncio.Event()
        deadlines.arm(_Request("last", expired, done), 0.05)
        await asyncio.wait_for(done.wait(), scaled(5))
        return expired

    deadlines = Deadlines()
    asyncio.run(first())
    assert asyncio.run(second()) == ["last"]
