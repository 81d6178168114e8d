"""The redis backbone's live feed (backbone/redis/_fanout.py): a pub/sub connection that goes
silent without closing is noticed by its watchdog and replaced, and so is one Redis closed by
restarting; either way the followers get what they missed from the log."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from skillwire.protocol import EncodedEvent
from skillwire.server.backbone.redis import _keys as keys
from skillwire.server.backbone.redis._connections import pool_options
from skillwire.server.backbone.redis._fanout import Fanout
from tests.conftest import RedisServer, eventually, own_redis_server, scaled


class FreezingProxy:
    """A TCP proxy to Redis whose open connections can go silent: frozen, they stop
    forwarding both ways and stay open, like a peer gone without a FIN or a stuck NAT entry.
    Connections made after the freeze forward as usual."""

    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self._server: asyncio.Server | None = None
        self._pumps: list[asyncio.Task[None]] = []
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target_port)
        self._writers += [writer, up_writer]
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            self._pumps.append(asyncio.create_task(_pump(source, sink)))

    def freeze(self) -> None:
        for pump in self._pumps:
            pump.cancel()
        self._pumps = []

    async def close(self) -> None:
        self.freeze()
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    sink.close()


@pytest.fixture(scope="module")
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of this module's own, which a test restarts."""
    with own_redis_server("skillwire-redis-fanout-") as server:
        yield server


@pytest.fixture
async def publisher(own_redis: RedisServer) -> AsyncIterator[Any]:
    client = aioredis.Redis.from_url(own_redis.url, **pool_options())
    yield client
    await client.aclose()


class _Log:
    """Stands for the task log a reconnected fan-out reads each task's newest event from."""

    def __init__(self) -> None:
        self.newest: EncodedEvent | None = None

    async def resync(self, task_id: str) -> EncodedEvent | None:
        return self.newest


async def _publish(publisher: Any, log: _Log, task_id: str, seq: int) -> None:
    """Append (to the stand-in log) and publish as the APPEND script does."""
    log.newest = EncodedEvent(seq, "request.output", b'{"n":%d}' % seq)
    await publisher.publish(keys.live(task_id), b'%d request.output {"n":%d}' % (seq, seq))


async def _fanout(url: str, log: _Log, idle: float) -> Fanout:
    client = aioredis.Redis.from_url(url, **pool_options())
    fanout = Fanout(client, lambda payload: None, log.resync, idle=idle)
    await fanout.start()
    return fanout


async def test_a_pub_sub_connection_gone_silent_is_replaced_and_nothing_is_missed(
    own_redis: RedisServer, publisher: Any
) -> None:
    """The pub/sub connection stops carrying anything but stays open: a PING gets no answer,
    the fan-out reports itself disconnected (readyz 503), reconnects, and the follower gets
    the event published meanwhile from the log, then live events again."""
    proxy = FreezingProxy(own_redis.port)
    await proxy.start()
    log = _Log()
    fanout = await _fanout(f"redis://127.0.0.1:{proxy.port}/0", log, idle=scaled(0.2))
    try:
        seen: list[int] = []
        await fanout.listen("tsk_silent", lambda event: seen.append(event.seq))
        await _publish(publisher, log, "tsk_silent", 1)
        await eventually(lambda: seen == [1])

        proxy.freeze()
        await _publish(publisher, log, "tsk_silent", 2)
        await eventually(lambda: not fanout.connected, timeout=10)
        await eventually(lambda: fanout.connected and seen == [1, 2], timeout=10)

        await _publish(publisher, log, "tsk_silent", 3)
        await eventually(lambda: seen == [1, 2, 3])
    finally:
        await fanout.close()
        await proxy.close()


async def test_an_idle_healthy_connection_answers_the_watchdog_and_is_kept(
    own_redis: RedisServer, publisher: Any
) -> None:
    """Nothing published for several watchdog periods: the PONGs keep the connection, and
    the next event arrives live on it (no reconnect, no resync)."""
    log = _Log()
    fanout = await _fanout(own_redis.url, log, idle=scaled(0.05))
    try:
        seen: list[int] = []
        await fanout.listen("tsk_idle", lambda event: seen.append(event.seq))
        first = fanout._pubsub
        pongs = fanout._heard
        await eventually(lambda: fanout._heard >= pongs + 3)
        assert fanout.connected and fanout._pubsub is first
        await _publish(publisher, log, "tsk_idle", 1)
        await eventually(lambda: seen == [1])
        assert fanout._pubsub is first
    finally:
        await fanout.close()


async def test_after_a_redis_restart_the_feed_resumes_from_the_log(
    own_redis: RedisServer, publisher: Any
) -> None:
    """Redis restarts (the connection closes): the fan-out reconnects, resubscribes, hands
    the follower the newest logged event, and live events flow again."""
    log = _Log()
    fanout = await _fanout(own_redis.url, log, idle=scaled(0.5))
    try:
        seen: list[int] = []
        await fanout.listen("tsk_restart", lambda event: seen.append(event.seq))
        await _publish(publisher, log, "tsk_restart", 1)
        await eventually(lambda: seen == [1])

        await asyncio.to_thread(own_redis.stop)
        await eventually(lambda: not fanout.connected, timeout=10)
        log.newest = EncodedEvent(2, "request.output", b'{"n":2}')  # logged while it was away
        await asyncio.to_thread(own_redis.start)
        await eventually(lambda: fanout.connected and seen == [1, 2], timeout=15)

        await _publish(publisher, log, "tsk_restart", 3)
        await eventually(lambda: seen == [1, 2, 3], timeout=10)
    finally:
        await fanout.close()
