"""Sessions on Redis: records, the log, closing and snapshots, each one script.

A session's hash, log (a Stream capped like a task's) and live channel share its hash tag;
its tasks' APPEND and CANCEL scripts write its log in the same script as their own
(``_session_lua.SESSION_PART``), so both logs change in one atomic step. Redis errors are
translated by the backbone that calls these (``_errors.translated``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from skillwire.protocol import (
    Conflict,
    EncodedEvent,
    EncodedSessionEvent,
    Event,
    NotFound,
    Session,
    SessionSnapshot,
    SessionTask,
    Task,
    decode_task,
    encode,
)

from .._base import Idempotency, LogSlice, StoredSession
from . import _keys as keys
from . import _scripts as scripts
from ._session_lua import (
    SESSION_CLOSE_FINISH,
    SESSION_CLOSE_MARK,
    SESSION_CREATE_TASK,
    SESSION_VIEW,
)

__all__ = ["RedisSessions", "session_entry"]

Script = Callable[[str, list[str], list[Any]], Awaitable[Any]]
_session_decoder = msgspec.json.Decoder(Session)


def session_entry(entry_id: bytes, fields: dict[bytes, bytes] | list[bytes]) -> EncodedEvent:
    """A session log entry as a Stream read or a script returns it."""
    if isinstance(fields, list):
        fields = dict(zip(fields[::2], fields[1::2], strict=True))
    seq = int(entry_id.split(b"-", 1)[0])
    return EncodedSessionEvent(seq, fields[b"t"].decode(), fields[b"e"])


class RedisSessions:
    def __init__(self, client: Any, script: Script, *, max_events: int, retention: int) -> None:
        self._client = client
        self._script = script
        self._max_events = max_events
        self._retention = retention

    # -- records -------------------------------------------------------------------------
    async def create(self, session: Session, owner: str) -> None:
        session_id = session.session_id
        created_ms = int(time.time() * 1000)
        pipe = self._client.pipeline(transaction=True)
        pipe.hset(
            keys.session(session_id),
            mapping={
                "owner": owner,
                "title": encode(session.title),
                "meta": encode(session.metadata),
                "status": session.status.value,
                "created_at": session.created_at,
                "updated_at": session.updated_at,
                "last_seq": 0,
            },
        )
        pipe.expire(keys.session(session_id), self._retention)
        pipe.zadd(keys.SESSIONS, {session_id: created_ms})
        pipe.zadd(keys.owner_sessions(owner), {session_id: created_ms})
        await pipe.execute()

    async def get(self, session_id: str) -> StoredSession | None:
        found = await self._script(
            SESSION_VIEW, [keys.session(session_id), keys.session_tasks(session_id)], [session_id]
        )
        if found is None:
            return None
        json, owner, _ = found
        return StoredSession(_session_decoder.decode(json), owner.decode())

    async def page(self, owner: str | None, limit: int, offset: int) -> tuple[list[Session], int]:
        index = keys.SESSIONS if owner is None else keys.owner_sessions(owner)
        await self._prune(index)
        total = await self._client.zcard(index)
        ids = await self._client.zrevrange(index, offset, offset + limit - 1)
        sessions = []
        for raw in ids:
            stored = await self.get(raw.decode())
            if stored is not None:
                sessions.append(stored.session)
        return sessions, total

    async def _prune(self, index: str) -> None:
        """Drop ids whose session expired (retention counts from the last activity)."""
        cutoff = (time.time() - self._retention) * 1000
        old = await self._client.zrangebyscore(index, "-inf", cutoff)
        if not old:
            return
        pipe = self._client.pipeline(transaction=False)
        for session_id in old:
            pipe.exists(keys.session(session_id.decode()))
        alive = await pipe.execute()
        gone = [sid for sid, exists in zip(old, alive, strict=True) if not exists]
        if gone:
            await self._client.zrem(index, *gone)

    # -- joining -------------------------------------------------------------------------
    async def create_task(
        self,
        task: Task,
        first_event: Event,
        mapping: dict[str, Any],
        *,
        owner: str,
        created_ms: int,
        indexes: list[str],
        work: list[bytes],
        idempotency: Idempotency | None,
    ) -> tuple[str, str] | None:
        """The task, its first event and its work, joining its session in the same script;
        with ``idempotency``, the earlier (task id, fingerprint) when the key was taken."""
        session_id = task.session_id
        assert session_id is not None
        task_id = task.task_id
        joined = SessionTask(task_id, task.app, task.skill, task.parent_task_id)
        flat: list[Any] = []
        for name, value in mapping.items():
            flat += (name, value)
        outcome = await self._script(
            SESSION_CREATE_TASK,
            [
                keys.task(task_id),
                keys.events(task_id),
                indexes[0],  # the set of index names
                keys.task(task_id),  # (unused)
                keys.WORK,
                keys.session(session_id),
                keys.events(session_id),
                keys.session_tasks(session_id),
                keys.live(session_id),
                keys.idempotency(idempotency.key if idempotency else task_id),
                *indexes[1:],
            ],
            [
                task_id,
                session_id,
                self._retention,
                created_ms,
                task.created_at,
                self._max_events,
                first_event.seq,
                first_event.type.value,
                encode(first_event),
                encode(joined),
                "1" if idempotency is not None else "0",
                f"{task_id} {idempotency.fingerprint}" if idempotency is not None else "",
                max(int(idempotency.ttl), 1) if idempotency is not None else 1,
                len(mapping),
                *flat,
                *work,
            ],
        )
        if outcome[0] == b"earlier":
            earlier_id, _, earlier_fingerprint = outcome[1].decode().partition(" ")
            return earlier_id, earlier_fingerprint
        if outcome[0] == b"missing":
            raise NotFound(f"session {session_id} not found", details={"session_id": session_id})
        if outcome[0] == b"closed":
            raise Conflict(
                f"session {session_id} is closed",
                details={"session_id": session_id, "status": "closed"},
            )
        return None

    # -- closing -------------------------------------------------------------------------
    async def mark_closed(self, session_id: str) -> list[str]:
        """No task joins from now on; returns the session's task ids."""
        result = await self._script(
            SESSION_CLOSE_MARK, [keys.session(session_id), keys.session_tasks(session_id)], []
        )
        if result[0] == b"missing":
            raise NotFound(f"session {session_id} not found", details={"session_id": session_id})
        if result[0] == b"conflict":
            raise Conflict(
                f"session {session_id} is closed",
                details={"session_id": session_id, "status": "closed"},
            )
        return [raw.decode() for raw in result[1:]]

    async def append_closed(self, session_id: str, now: str) -> Session:
        json = await self._script(
            SESSION_CLOSE_FINISH,
            [
                keys.session(session_id),
                keys.events(session_id),
                keys.session_tasks(session_id),
                keys.live(session_id),
            ],
            [session_id, now, self._max_events, self._retention],
        )
        if json is None:
            raise Conflict(
                f"session {session_id} is closed",
                details={"session_id": session_id, "status": "closed"},
            )
        closed = msgspec.json.decode(json, type=_ClosedEvent)
        return closed.data

    # -- the log -------------------------------------------------------------------------
    async def read(self, session_id: str, after: int, limit: int) -> LogSlice | None:
        found = await self._script(
            scripts.READ, [keys.session(session_id), keys.events(session_id)], [after, limit]
        )
        if found is None:
            return None
        status, last_seq, first_seq, entries = found
        return LogSlice(
            events=[session_entry(entry_id, fields) for entry_id, fields in entries],
            first_seq=int(first_seq),
            last_seq=int(last_seq),
            finished=status == b"closed",  # 'closing' until session.closed is in the log
        )

    async def newest(self, session_id: str) -> EncodedEvent | None:
        entries = await self._client.xrevrange(keys.events(session_id), count=1)
        return session_entry(*entries[0]) if entries else None

    async def snapshot(self, session_id: str, tasks: int) -> SessionSnapshot | None:
        found = await self._script(
            scripts.SNAPSHOT,
            [keys.session(session_id), keys.session_tasks(session_id)],
            [session_id, tasks],
        )
        if found is None:
            return None
        return SessionSnapshot(
            session=_session_decoder.decode(found[0]),
            tasks=[decode_task(json) for json in found[1:]],
        )


class _ClosedEvent(msgspec.Struct):
    data: Session
