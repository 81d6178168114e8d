"""The runtime's one heartbeat timer: beats every open connection, drains them, and survives
the app being served again on a new event loop."""

from __future__ import annotations

import asyncio

from skillwire.server._config import Config
from skillwire.server._runtime import Runtime
from tests.conftest import eventually


class FakeConnection:
    def __init__(self) -> None:
        self.beats = 0
        self.drained = False

    def heartbeat(self, now: float) -> None:
        self.beats += 1

    def drain(self) -> None:
        self.drained = True


def _runtime() -> Runtime:
    return Runtime.build(Config(heartbeat_interval=0.04, demo=False), [])


async def _beat_twice(runtime: Runtime) -> FakeConnection:
    connection = FakeConnection()
    runtime.add_connection(connection)
    await eventually(lambda: connection.beats >= 2)
    runtime.remove_connection(connection)
    return connection


def test_one_timer_beats_each_connection_on_every_loop_it_is_served_on() -> None:
    """The timer beats a connection; served again on a new loop (the old one closed with the
    timer pending), it beats there too."""
    runtime = _runtime()
    abandoned = asyncio.new_event_loop()
    first = abandoned.run_until_complete(_beat_twice(runtime))
    abandoned.close()  # closed without cancelling its tasks: the timer is left pending there
    second = asyncio.run(_beat_twice(runtime))
    assert first.beats >= 2
    assert second.beats >= 2


def test_drain_tells_every_connection() -> None:
    """begin_drain tells every open connection to drain, at once."""

    async def run() -> list[FakeConnection]:
        runtime = _runtime()
        connections = [FakeConnection() for _ in range(3)]
        for connection in connections:
            runtime.add_connection(connection)
        runtime.begin_drain()
        assert all(c.drained for c in connections)
        for connection in connections:
            runtime.remove_connection(connection)
        return connections

    assert all(c.drained for c in asyncio.run(run()))
