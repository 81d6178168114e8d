"""The embedded backbone: everything in this process's memory, on its event loop.

Single-threaded asyncio makes each method atomic as long as it does not await in the middle,
which is how ``append`` keeps seq order and subscribe-then-replay stays gap-free.

Memory stays bounded per task: the Task holds at most ``max_outputs`` outputs per request and
``max_output_bytes`` of encoded outputs (``OutputBounds``), and the log at most ``max_events``
events and about ``max_log_bytes`` of event JSON. The log keeps each event lean (its JSON,
seq and type); the frames built for live subscribers are cached on a separate object that is
dropped once they are sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from skillwire.protocol import (
    DEFAULT_MAX_OUTPUT_BYTES,
    DEFAULT_MAX_OUTPUTS,
    DeliveryStatus,
    EncodedEvent,
    Event,
    EventType,
    NotFound,
    OutputBounds,
    Session,
    SessionSnapshot,
    SkillDeclaration,
    Task,
    TaskStatus,
    WebhookPayload,
    encode,
    format_time,
    lifecycle,
    parse_time,
)

from ._base import (
    Backbone,
    CancelListener,
    Claim,
    DeliveryListener,
    DeliveryRecord,
    EventListener,
    Idempotency,
    LogSlice,
    StoredSession,
    StoredTask,
    WorkItem,
)
from ._deliveries import MemoryDeliveries, webhook_targets
from ._sessions import MemorySessions
from ._trim import trim_log

__all__ = ["MemoryBackbone"]


@dataclass(slots=True)
class _Record:
    task: Task
    owner: str
    webhook_url: str | None
    log: list[_Logged]
    # Made at the first output (None until then), and the list at the first listener: a
    # running task nobody follows, whose skill emitted nothing yet, holds neither.
    bounds: OutputBounds | None = None
    log_bytes: int = 0
    first_seq: int = 1
    listeners: list[EventListener] | None = None


class _Logged:
    """An event as a task's log keeps it: its JSON, seq and type, and no room for frames (a
    reader gets an ``EncodedEvent`` made from it, and caches its frames on that)."""

    __slots__ = ("json", "seq", "type")

    def __init__(self, event: EncodedEvent) -> None:
        self.seq = event.seq
        self.type = event.type
        self.json = event.json  # shared, not copied

    def event(self) -> EncodedEvent:
        return EncodedEvent(self.seq, self.type, self.json)


class MemoryBackbone(Backbone):
    name = "memory"

    def __init__(
        self,
        *,
        max_events: int = 10_000,
        max_log_bytes: int = 16 * 1024 * 1024,
        max_outputs: int = DEFAULT_MAX_OUTPUTS,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
        retention: float = 86_400.0,
        sweep_interval: float = 60.0,
    ) -> None:
        self._max_events = max_events
        self._max_log_bytes = max_log_bytes
        self._trim_events = max_events + max_events // 4
        self._max_outputs = max_outputs
        self._max_output_bytes = max_output_bytes
        self._retention = retention
        self._sweep_interval = sweep_interval
        self._records: dict[str, _Record] = {}
        # Each principal's task ids, oldest first (a dict keeps its insertion order): a list of
        # one principal's tasks reads them, not every task.
        self._by_owner: dict[str, dict[str, None]] = {}
        self._queue: asyncio.Queue[WorkItem] = asyncio.Queue()
        self._enqueued: dict[int, float] = {}  # id(item) -> when it was queued
        self._cancel_listeners: list[CancelListener] = []
        self._tickets: dict[str, tuple[str, float]] = {}
        self._idempotency: dict[str, tuple[str, str, float]] = {}
        self._secret = secrets.token_bytes(32)
        self._sweeper: asyncio.Task[None] | None = None
        self._deliveries = MemoryDeliveries(retention)
        self._taker: Callable[[Claim], bool] | None = None
        self._sessions = MemorySessions(
            max_events=max_events, max_log_bytes=max_log_bytes, retention=retention
        )
        self._declarations: dict[str, tuple[SkillDeclaration, float]] = {}  # key -> (it, until)

    # -- life ----------------------------------------------------------------------------
    async def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="skillwire-memory-sweeper")

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    async def check(self) -> None:
        return None

    async def id_secret(self) -> bytes:
        return self._secret

    # -- tasks ---------------------------------------------------------------------------
    async def create_task(
        self,
        task: Task,
        first_event: Event,
        *,
        owner: str,
        webhook_url: str | None,
        work: list[WorkItem],
        idempotency: Idempotency | None = None,
    ) -> tuple[str, str] | None:
        # No await from here to the end: the key and the task are stored in one step.
        if idempotency is not None:
            deadline = time.monotonic() + idempotency.ttl
            existing = self._idempotency.get(idempotency.key)
            if existing is not None and existing[2] > time.monotonic():
                return existing[0], existing[1]
        if task.session_id is not None:
            # Checked before the key is kept: a call refused here leaves no key behind.
            self._sessions.check_open(task.session_id)
        if idempotency is not None:
            self._idempotency[idempotency.key] = (task.task_id, idempotency.fingerprint, deadline)
        first = EncodedEvent.of(first_event)
        task.links = lifecycle.UNLINKED  # every answer is a task_view, which derives them
        self._by_owner.setdefault(owner, {})[task.task_id] = None
        self._records[task.task_id] = _Record(
            task=task,
            owner=owner,
            webhook_url=webhook_url,
            log=[_Logged(first)],
            log_bytes=len(first.json),
        )
        now = time.time()
        if task.session_id is not None:
            self._sessions.task_joined(task, first, now)
        for item in work:
            # Straight to a free worker when nothing waits before it: no trip through the
            # queue and the fetch loop (a quick call answers sooner).
            taker = self._taker
            if taker is not None and self._queue.empty() and taker(Claim(item, enqueued_at=now)):
                continue
            self._enqueued[id(item)] = now
            self._queue.put_nowait(item)
        return None

    def hand_work_to(self, taker: Callable[[Claim], bool]) -> None:
        self._taker = taker

    def _live(self, task_id: str) -> _Record | None:
        """The task's record, unless it finished more than the retention window ago: then it
        is forgotten at once (its id answers 410 from then on, not when the sweep next runs)."""
        record = self._records.get(task_id)
        if record is not None and self._expired(record, time.time() - self._retention):
            self._forget(task_id)
            return None
        return record

    @staticmethod
    def _expired(record: _Record, cutoff: float) -> bool:
        finished_at = record.task.finished_at
        return finished_at is not None and parse_time(finished_at) < cutoff

    def _forget(self, task_id: str) -> None:
        record = self._records.pop(task_id)
        owned = self._by_owner[record.owner]
        del owned[task_id]
        if not owned:
            del self._by_owner[record.owner]

    async def get_task(self, task_id: str) -> StoredTask | None:
        record = self._live(task_id)
        if record is None:
            return None
        return StoredTask(lifecycle.task_view(record.task), record.owner, record.webhook_url)

    async def list_tasks(
        self,
        *,
        owner: str | None,
        status: TaskStatus | None,
        app: str | None,
        skill: str | None,
        limit: int,
        offset: int,
    ) -> tuple[list[Task], int]:
        if owner is None:
            records = reversed(self._records.values())
        else:
            records = (self._records[i] for i in reversed(self._by_owner.get(owner, {})))
        cutoff = time.time() - self._retention
        matches = [
            r
            for r in records
            if not self._expired(r, cutoff)
            and (status is None or r.task.status == status)
            and (app is None or r.task.app == app)
            and (skill is None or r.task.skill == skill)
        ]
        page = matches[offset : offset + limit]
        return [lifecycle.task_view(r.task) for r in page], len(matches)

    async def append(
        self, task_id: str, type_: EventType, index: int, data: Any
    ) -> list[EncodedEvent]:
        record = self._records.get(task_id)
        if record is None:
            return []
        bounds = record.bounds
        if bounds is None and (
            type_ is EventType.REQUEST_OUTPUT or type_ is EventType.REQUEST_DELTA
        ):
            # Before this no output was counted: nothing for a restarted request to reset.
            bounds = record.bounds = OutputBounds(self._max_outputs, self._max_output_bytes)
        events = lifecycle.append(record.task, type_, index, data, format_time(time.time()), bounds)
        return self._publish(record, events)

    async def cancel(self, task_id: str) -> Task:
        record = self._live(task_id)
        if record is None:
            raise NotFound(f"task {task_id} not found")
        event = lifecycle.cancel(record.task, format_time(time.time()))
        self._publish(record, [event])
        for listener in list(self._cancel_listeners):
            listener(task_id)
        return event.data  # type: ignore[no-any-return]

    def _publish(self, record: _Record, events: list[Event]) -> list[EncodedEvent]:
        encoded: list[EncodedEvent] = []
        log = record.log
        for plain in events:
            event = EncodedEvent.of(plain)
            encoded.append(event)
            log.append(_Logged(event))
            record.log_bytes += len(event.json)
            if event.terminal:
                self._create_deliveries(record, plain)
        # trim_log drops nothing below these: a token's append skips the call.
        if len(log) > self._trim_events or record.log_bytes > self._max_log_bytes:
            self._trim(record)
        if record.task.session_id is not None:
            # The session's log in the same step, before any listener hears of either.
            self._sessions.task_events(record.task.session_id, encoded, time.time())
        listeners = record.listeners
        if not listeners:
            return encoded
        for event in encoded:
            if len(listeners) == 1:
                listeners[0](event)  # a lone follower: no copy of the list
            else:
                for listener in list(listeners):  # a listener may leave while called
                    listener(event)
        return encoded

    def _trim(self, record: _Record) -> None:
        trim_log(record, self._max_events, self._max_log_bytes)

    def _create_deliveries(self, record: _Record, event: Event) -> None:
        """In the same step as the terminal event: one delivery per webhook URL."""
        urls = webhook_targets(record.webhook_url, self.webhook_urls)
        if urls:
            payload = encode(WebhookPayload(type=event.type, timestamp=event.time, data=event.data))
            self._deliveries.create(record.task.task_id, urls, event.type, payload, time.time())

    # -- log and fan-out -----------------------------------------------------------------
    async def read_events(self, task_id: str, after: int, limit: int) -> LogSlice | None:
        record = self._live(task_id)
        if record is None:
            return None
        start = max(after + 1 - record.first_seq, 0)
        return LogSlice(
            # Events of the reader's own, made from the log's entries: it caches its frames on them.
            events=[e.event() for e in record.log[start : start + limit]],
            first_seq=record.first_seq,
            last_seq=record.task.last_seq,
            finished=record.task.status in lifecycle.TERMINAL_TASK_STATUSES,
        )

    async def listen(self, task_id: str, listener: EventListener) -> Callable[[], None]:
        record = self._live(task_id)
        if record is None:
            return lambda: None
        if record.listeners is None:
            record.listeners = []
        listeners = record.listeners
        listeners.append(listener)

        def undo() -> None:
            with contextlib.suppress(ValueError):
                listeners.remove(listener)

        return undo

    def listener_count(self) -> int:
        """Live listeners across all tasks and sessions (tests check that streams clean up)."""
        return sum(len(r.listeners or ()) for r in self._records.values()) + (
            self._sessions.listener_count()
        )

    # -- sessions ------------------------------------------------------------------------
    async def create_session(self, session: Session, *, owner: str) -> None:
        self._sessions.create(session, owner)

    async def get_session(self, session_id: str) -> StoredSession | None:
        return self._sessions.get(session_id)

    async def list_sessions(
        self, *, owner: str | None, limit: int, offset: int
    ) -> tuple[list[Session], int]:
        return self._sessions.page(owner, limit, offset)

    async def close_session(self, session_id: str) -> Session:
        # No await from here to the end: nothing joins or appends in between, so
        # ``session.closed`` is the log's last event.
        self._sessions.mark_closed(session_id)
        now = time.time()
        for task_id in self._sessions.running_task_ids(session_id):
            record = self._records.get(task_id)
            if record is None or record.task.status in lifecycle.TERMINAL_TASK_STATUSES:
                continue
            self._publish(record, [lifecycle.cancel(record.task, format_time(now))])
            for listener in list(self._cancel_listeners):
                listener(task_id)
        return self._sessions.append_closed(session_id, now)

    async def read_session_events(self, session_id: str, after: int, limit: int) -> LogSlice | None:
        return self._sessions.read(session_id, after, limit)

    async def listen_session(self, session_id: str, listener: EventListener) -> Callable[[], None]:
        return self._sessions.listen(session_id, listener)

    async def session_snapshot(self, session_id: str, tasks: int) -> SessionSnapshot | None:
        stored = self._sessions.get(session_id)
        if stored is None:
            return None
        views = [
            lifecycle.task_view(record.task)
            for task_id in stored.session.task_ids[-tasks:]
            if (record := self._records.get(task_id)) is not None
        ]
        return SessionSnapshot(session=stored.session, tasks=views)

    # -- work ----------------------------------------------------------------------------
    async def claim(self, consumer: str, count: int, timeout: float) -> list[Claim]:
        try:
            async with asyncio.timeout(timeout):
                first = await self._queue.get()
        except TimeoutError:
            return []
        claims = [Claim(item=first, enqueued_at=self._enqueued.pop(id(first), 0.0))]
        while len(claims) < count and not self._queue.empty():
            item = self._queue.get_nowait()
            claims.append(Claim(item=item, enqueued_at=self._enqueued.pop(id(item), 0.0)))
        return claims

    async def ack(self, claim: Claim) -> None:
        return None

    async def requeue(self, claim: Claim) -> None:
        self._enqueued[id(claim.item)] = time.time()
        self._queue.put_nowait(claim.item)

    async def queue_stats(self) -> tuple[int, float]:
        oldest = min(self._enqueued.values(), default=None)
        return self._queue.qsize(), (time.time() - oldest) if oldest is not None else 0.0

    # -- control -------------------------------------------------------------------------
    def add_cancel_listener(self, listener: CancelListener) -> None:
        self._cancel_listeners.append(listener)

    # -- small shared state --------------------------------------------------------------
    async def declare_skill(self, declaration: SkillDeclaration, ttl: float) -> SkillDeclaration:
        now = time.time()
        kept = self._declarations.get(declaration.key)
        if kept is not None and kept[1] > now:
            if not kept[0].same_contract(declaration):
                return kept[0]
            self._declarations[declaration.key] = (kept[0], max(kept[1], now + ttl))
            return kept[0]
        self._declarations[declaration.key] = (declaration, now + ttl)
        return declaration

    async def declared_skills(self) -> list[SkillDeclaration]:
        now = time.time()
        return [it for key, (it, until) in sorted(self._declarations.items()) if until > now]

    async def declared_skill(self, app: str, skill: str) -> SkillDeclaration | None:
        kept = self._declarations.get(f"{app}/{skill}")
        return kept[0] if kept is not None and kept[1] > time.time() else None

    async def put_ticket(self, ticket: str, principal: str, ttl: float) -> None:
        self._tickets[ticket] = (principal, time.monotonic() + ttl)

    async def take_ticket(self, ticket: str) -> str | None:
        entry = self._tickets.pop(ticket, None)
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    # -- retention -----------------------------------------------------------------------
    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_interval)
            self.sweep(time.time())

    def sweep(self, now: float) -> None:
        """Forget finished tasks past the retention window, spent tickets and keys."""
        cutoff = now - self._retention
        for task_id in [t for t, r in self._records.items() if self._expired(r, cutoff)]:
            self._forget(task_id)
        mono = time.monotonic()
        for ticket in [t for t, (_, exp) in self._tickets.items() if exp < mono]:
            del self._tickets[ticket]
        for key in [k for k, v in self._idempotency.items() if v[2] < mono]:
            del self._idempotency[key]
        self._deliveries.sweep(now)
        self._sessions.sweep(now)

    # -- webhook deliveries ----------------------------------------------------------------
    async def claim_deliveries(
        self, count: int, lease: float
    ) -> tuple[list[DeliveryRecord], float | None]:
        return self._deliveries.claim(count, lease, time.time())

    async def finish_attempt(
        self,
        delivery_id: str,
        attempt: int,
        *,
        delivered: bool,
        error: str | None,
        retry_at: float | None,
    ) -> bool:
        return self._deliveries.finish(
            delivery_id,
            attempt,
            delivered=delivered,
            error=error,
            retry_at=retry_at,
            now=time.time(),
        )

    async def retry_delivery(self, delivery_id: str) -> DeliveryRecord:
        return self._deliveries.retry(delivery_id, time.time())

    async def get_delivery(self, delivery_id: str) -> DeliveryRecord | None:
        return self._deliveries.get(delivery_id)

    async def list_deliveries(
        self, *, status: DeliveryStatus | None, limit: int, offset: int
    ) -> tuple[list[DeliveryRecord], int]:
        return self._deliveries.list(status, limit, offset)

    def add_delivery_listener(self, listener: DeliveryListener) -> None:
        self._deliveries.add_listener(listener)
