"""Commands of the whole process, many per round trip (auto-pipelining).

A thousand running skills that each append an event would otherwise hold a thousand pooled
connections, each for one round trip, and the ones past the pool's size would wait for a
connection, their events late. Here a call queues its command and awaits the reply; a
flusher sends everything queued meanwhile as one pipeline on one connection, and a few
flushers run at once so packing the next batch overlaps Redis running the current one.

Per-caller order holds: a caller awaits each reply before its next command. Redis runs a
pipeline's commands in order, one at a time, so each script stays atomic; the pipeline is
not a transaction (one command's error does not undo the others).
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from typing import Any

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

__all__ = ["CommandBatcher"]


class _Call:
    __slots__ = ("args", "future", "repeatable", "script")

    def __init__(
        self,
        args: tuple[Any, ...],
        future: asyncio.Future[Any],
        script: str | None,
        repeatable: bool,
    ):
        self.args = args
        self.future = future
        self.script = script  # the Lua source, for an EVALSHA that Redis may have forgotten
        self.repeatable = repeatable  # running it twice changes nothing (a read, an ack)


class CommandBatcher:
    def __init__(
        self,
        client: Any,
        *,
        max_batch: int = 512,
        max_in_flight: int = 4,
        reply_timeout: float = 10.0,
    ) -> None:
        self._client = client
        self._reply_timeout = reply_timeout
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._pending: deque[_Call] = deque()
        self._flushers: set[asyncio.Task[None]] = set()
        self._shas: dict[str, str] = {}

    async def command(self, *args: Any, repeatable: bool = False) -> Any:
        return await self._queue(args, None, repeatable)

    async def script(
        self, source: str, keys: list[str], args: list[Any], *, repeatable: bool = False
    ) -> Any:
        """EVALSHA of ``source``; ``repeatable`` when running it twice changes nothing, so
        that it may be sent again when its connection turns out dead."""
        sha = self._shas.get(source)
        if sha is None:
            sha = self._shas[source] = await self._load(source)
        return await self._queue(("EVALSHA", sha, len(keys), *keys, *args), source, repeatable)

    def script_soon(
        self, source: str, keys: list[str], args: list[Any]
    ) -> asyncio.Future[Any] | None:
        """``script`` without a coroutine: its reply's future, or None while ``source`` was
        never loaded (then ``script`` it is)."""
        sha = self._shas.get(source)
        if sha is None:
            return None
        return self._queue(("EVALSHA", sha, len(keys), *keys, *args), source, False)

    async def _load(self, source: str) -> str:
        """SCRIPT LOAD, which is safe to repeat: once more if the pooled connection died with
        a restarted Redis (the failed one is dropped; the pool checks the next before use)."""
        try:
            sha: str = await self._client.script_load(source)
        except RedisConnectionError:
            sha = await self._client.script_load(source)
        return sha

    async def close(self) -> None:
        for flusher in list(self._flushers):
            flusher.cancel()
        await asyncio.gather(*self._flushers, return_exceptions=True)

    def _queue(
        self, args: tuple[Any, ...], script: str | None, repeatable: bool
    ) -> asyncio.Future[Any]:
        future = asyncio.get_running_loop().create_future()
        self._pending.append(_Call(args, future, script, repeatable))
        if len(self._flushers) < self._max_in_flight:
            # Started, not run: it takes what is queued when it first runs, so every command
            # issued in this turn of the loop shares its round trip.
            flusher = asyncio.create_task(self._flush(), name="skillwire-redis-batch")
            self._flushers.add(flusher)
            flusher.add_done_callback(self._flushers.discard)
        return future

    async def _flush(self) -> None:
        try:
            await self._drain()
        finally:
            # At once, not in a done callback: a call queued before that callback ran would
            # count this flusher as running and start none, and wait with nobody to send it.
            if (this := asyncio.current_task()) is not None:
                self._flushers.discard(this)

    async def _drain(self) -> None:
        while self._pending:
            batch = [
                self._pending.popleft() for _ in range(min(len(self._pending), self._max_batch))
            ]
            batch = [call for call in batch if not call.future.done()]  # callers gone
            if not batch:
                continue
            try:
                await self._send(batch, retry_unknown_scripts=True)
            except asyncio.CancelledError:
                for call in batch:
                    call.future.cancel()
                raise
            except Exception as exc:  # reloading a script failed: the connection is gone
                _fail(batch, exc)

    async def _send(
        self, batch: list[_Call], *, retry_unknown_scripts: bool, retry_dead: bool = True
    ) -> None:
        try:
            replies = await self._round_trip(batch)
        except RedisConnectionError as exc:
            # A pooled connection that died with a restarted Redis, its close not yet seen
            # (_round_trip dropped it; the pool checks the next one before use): what is safe
            # to repeat goes once more; the rest may have run, so their callers hear it.
            # (Not the pool's disconnect() of idle connections: it races with checkouts and
            # cut connections in use.)
            again = [call for call in batch if call.repeatable] if retry_dead else []
            _fail([call for call in batch if not (retry_dead and call.repeatable)], exc)
            if again:
                await self._send(
                    again, retry_unknown_scripts=retry_unknown_scripts, retry_dead=False
                )
            return
        except Exception as exc:  # the connection failed: every caller hears it
            _fail(batch, exc)
            return
        forgotten: list[_Call] = []
        for call, reply in zip(batch, replies, strict=True):
            if isinstance(reply, NoScriptError) and call.script and retry_unknown_scripts:
                forgotten.append(call)
            elif call.future.done():
                continue
            elif isinstance(reply, Exception):
                call.future.set_exception(reply)
            else:
                call.future.set_result(reply)
        if forgotten:  # Redis restarted and lost its scripts: load them again, send once more
            for call in forgotten:
                sha = await self._load(call.script or "")
                self._shas[call.script or ""] = sha
                call.args = ("EVALSHA", sha, *call.args[2:])
            await self._send(forgotten, retry_unknown_scripts=False)

    async def _round_trip(self, batch: list[_Call]) -> list[Any]:
        """One write of every command, then their replies (an error reply is returned, not
        raised). Packed by hiredis in C, read under one timeout for the whole batch: redis-py's
        pipeline packs in Python and times each reply, which cost the worker a third of its
        time when a thousand tasks were appending."""
        pool = self._client.connection_pool
        connection = await pool.get_connection()
        try:
            await connection.send_packed_command(
                b"".join([hiredis.pack_command(call.args) for call in batch])
            )
            replies: list[Any] = []
            async with asyncio.timeout(self._reply_timeout):
                for _ in batch:
                    try:
                        replies.append(await connection.read_response(timeout=math.inf))
                    except ResponseError as exc:
                        replies.append(exc)
            return replies
        except BaseException:
            # Replies may still be on their way: this connection's stream is out of step.
            await connection.disconnect(nowait=True)
            raise
        finally:
            await pool.release(connection)


def _fail(batch: list[_Call], exc: Exception) -> None:
    for call in batch:
        if not call.future.done():
            call.future.set_exception(_copy(exc))


def _copy(exc: Exception) -> Exception:
    """One exception object per waiting caller (each raise writes its own traceback)."""
    if isinstance(exc, ResponseError):
        return ResponseError(str(exc))
    if isinstance(exc, TimeoutError):  # before OSError, of which it is a subclass
        return RedisConnectionError("redis did not answer in time")
    if isinstance(exc, OSError):
        return OSError(str(exc))
    return RedisConnectionError(str(exc) or type(exc).__name__)
