"""One pub/sub connection per process: live events for local listeners, and control signals.

Channels are subscribed while a local listener wants them and dropped when the last one
leaves, so a process hears only the tasks its own clients follow. ``listen`` returns only
once Redis has confirmed the subscription: a log read after it cannot miss an event.
After a reconnect every channel is subscribed again and each task's newest logged event is
handed to its listeners, so a subscription that missed something finds the gap and reads it
from the log.

The reader waits for the next message with no timeout (an ``asyncio.Timeout`` per message
cost the gateway 4 % of its time). A watchdog per connection notices a connection that went
away silently (no FIN, no RST: a dead peer, a stuck proxy): when nothing has arrived for
``idle`` seconds it sends a PING on the pub/sub connection, and when nothing has arrived
``idle`` seconds after that either, it stops the reader, which reconnects as for any lost
connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError

from skillwire.protocol import (
    SESSION_ID_PREFIX,
    BackboneUnavailable,
    EncodedEvent,
    EncodedSessionEvent,
)

from .. import EventListener
from . import _keys as keys

__all__ = ["Fanout", "parse_live"]

log = logging.getLogger("skillwire.redis")


def parse_live(payload: bytes, kind: type[EncodedEvent] = EncodedEvent) -> list[EncodedEvent]:
    """``<seq> <type> <json>`` lines, one per event, as a script publishes them (a task's
    events, or with ``kind`` EncodedSessionEvent a session's)."""
    events = []
    for line in payload.split(b"\n"):
        seq, type_, json = line.split(b" ", 2)
        events.append(kind(int(seq), type_.decode("ascii"), json))
    return events


def _skip_push_debug_log(pubsub: Any) -> None:
    """redis-py's hiredis parser formats every pub/sub message into a debug log line, logged
    or not (a third of the gateway's time reading a busy channel): hand messages on as is."""
    parser = getattr(pubsub.connection, "_parser", None)
    if parser is not None and hasattr(parser, "set_pubsub_push_handler"):

        async def as_is(response: Any) -> Any:
            return response

        parser.set_pubsub_push_handler(as_is)


class Fanout:
    def __init__(
        self,
        client: Any,  # redis.asyncio.Redis; its reply types are too loose to be useful
        on_control: Callable[[bytes], None],
        resync: Callable[[str], Awaitable[EncodedEvent | None]],
        *,
        idle: float = 5.0,
    ) -> None:
        self._client = client
        self._idle = idle  # silence before a PING, and again before the connection is given up
        self._heard = 0  # messages read on the current connection (the watchdog compares)
        self._silent = False  # the watchdog stopped the reader: a lost connection, not a close
        self._on_control = on_control
        self._resync = resync
        self._listeners: dict[str, list[EventListener]] = {}
        self._confirm: dict[bytes, asyncio.Future[None]] = {}
        self._pubsub: Any = None  # redis.asyncio.client.PubSub
        self._reader: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._closing = False

    async def start(self) -> None:
        self._reader = asyncio.create_task(self._run(), name="skillwire-redis-fanout")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await self._connected.wait()

    async def close(self) -> None:
        self._closing = True
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()

    def listener_count(self) -> int:
        return sum(len(v) for v in self._listeners.values())

    @property
    def connected(self) -> bool:
        """The pub/sub connection is up: a listen now can be confirmed."""
        return self._connected.is_set()

    async def listen(self, task_id: str, listener: EventListener) -> Callable[[], None]:
        self._listeners.setdefault(task_id, []).append(listener)
        try:
            # Also when others listen already: their subscription may not be confirmed yet.
            await self._subscribe(keys.live(task_id))
        except BaseException:
            self._drop(task_id, listener)
            raise

        def undo() -> None:
            self._drop(task_id, listener)

        return undo

    def _drop(self, task_id: str, listener: EventListener) -> None:
        listeners = self._listeners.get(task_id)
        if listeners is None or listener not in listeners:
            return
        listeners.remove(listener)
        if not listeners:
            del self._listeners[task_id]
            if self._pubsub is not None and self._connected.is_set():
                task = asyncio.get_running_loop().create_task(self._unsubscribe(keys.live(task_id)))
                task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _subscribe(self, channel: str) -> None:
        if not self._connected.is_set():
            raise BackboneUnavailable("redis pub/sub is not connected")
        name = channel.encode()
        waiter = self._confirm.get(name)
        if waiter is None or waiter.done():
            waiter = asyncio.get_running_loop().create_future()
            self._confirm[name] = waiter
            assert self._pubsub is not None
            try:
                await self._pubsub.subscribe(channel)
            except (RedisError, OSError) as exc:
                raise BackboneUnavailable(f"redis pub/sub: {exc}") from exc
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
            # that races with the confirmation, leaving the caller stuck and uncancellable.
            async with asyncio.timeout(5):
                await asyncio.shield(waiter)
        except TimeoutError:
            raise BackboneUnavailable("redis did not confirm a subscription") from None

    async def _unsubscribe(self, channel: str) -> None:
        task_id = channel.split("{", 1)[1].split("}", 1)[0]
        if task_id in self._listeners or self._pubsub is None:
            return  # someone subscribed again meanwhile
        self._confirm.pop(channel.encode(), None)
        with contextlib.suppress(RedisError, OSError):
            await self._pubsub.unsubscribe(channel)

    async def _run(self) -> None:
        delay = 0.1
        while not self._closing:
            try:
                await self._connect_and_read()
                delay = 0.1
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("redis pub/sub connection lost (%s); reconnecting", exc)
            except Exception:
                log.exception("redis pub/sub reader failed; reconnecting")
            self._connected.clear()
            for waiter in self._confirm.values():
                if not waiter.done():
                    waiter.cancel()
            self._confirm.clear()
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 2.0)

    async def _connect_and_read(self) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        pubsub = self._client.pubsub()
        self._pubsub = pubsub
        channels = [keys.CONTROL, *(keys.live(t) for t in self._listeners)]
        for channel in channels:
            self._confirm[channel.encode()] = asyncio.get_running_loop().create_future()
        await pubsub.subscribe(*channels)
        _skip_push_debug_log(pubsub)
        reader = asyncio.current_task()
        assert reader is not None
        self._silent = False
        watchdog = asyncio.get_running_loop().create_task(
            self._watch(pubsub, reader), name="skillwire-redis-fanout-watchdog"
        )
        try:
            await self._read(pubsub, channels)
        except asyncio.CancelledError:
            # The watchdog's cancel alone (not also a close's): a connection lost like any other.
            if self._silent and reader.uncancel() == 0:
                raise OSError(f"redis pub/sub: no answer to a PING in {self._idle:g} s") from None
            raise
        finally:
            watchdog.cancel()

    async def _watch(self, pubsub: Any, reader: asyncio.Task[None]) -> None:
        """Every ``idle`` seconds: has anything arrived? If not, PING; if still nothing an
        ``idle`` later, the connection is dead though its socket is open: stop the reader."""
        while True:
            heard = self._heard
            await asyncio.sleep(self._idle)
            if self._heard != heard:
                continue
            # Its answer is read by the reader like any message. A failed send is the
            # reader's to notice (its read fails too); a send stuck on a full socket buffer
            # counts as no answer.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self._idle
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await pubsub.ping()
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            if self._heard == heard:
                log.warning(
                    "redis pub/sub: nothing heard for %g s, not even a PONG; reconnecting",
                    2 * self._idle,
                )
                self._silent = True
                reader.cancel()
                return

    async def _read(self, pubsub: Any, channels: list[str]) -> None:
        # Confirmations still awaited for this connection's first SUBSCRIBE; at none, resync.
        unconfirmed = {channel.encode() for channel in channels}
        resynced = False
        while True:
            # No timeout: the watchdog stands for redis-py's health check (see the docstring).
            message = await pubsub.get_message(timeout=None)
            self._heard += 1
            if message is None:  # the answer to redis-py's own health check
                if pubsub.connection is None:
                    raise OSError("pub/sub connection closed")
                continue
            kind = message["type"]
            if kind == "message":
                source: bytes = message["channel"]
                if source == keys.CONTROL.encode():
                    self._on_control(message["data"])
                    continue
                self._dispatch(source, message["data"])
            elif kind == "subscribe":
                waiter = self._confirm.get(message["channel"])
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
                if not self._connected.is_set() and message["channel"] == keys.CONTROL.encode():
                    self._connected.set()
                unconfirmed.discard(message["channel"])
                if not resynced and not unconfirmed:
                    resynced = True
                    asyncio.get_running_loop().create_task(self._resync_all())

    def _dispatch(self, channel: bytes, payload: bytes) -> None:
        task_id = channel.split(b"{", 1)[1].split(b"}", 1)[0].decode()
        listeners = self._listeners.get(task_id)
        if not listeners:
            return
        kind = EncodedSessionEvent if task_id.startswith(SESSION_ID_PREFIX) else EncodedEvent
        for event in parse_live(payload, kind):
            for listener in list(listeners):
                listener(event)

    async def _resync_all(self) -> None:
        """After a (re)connect: hand each followed task's newest event to its listeners."""
        for task_id in list(self._listeners):
            try:
                event = await self._resync(task_id)
            except (RedisError, OSError):
                return
            if event is not None:
                for listener in list(self._listeners.get(task_id, ())):
                    listener(event)
