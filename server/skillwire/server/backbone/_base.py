"""The backbone interface: everything that several server and worker processes must share.

Two implementations: ``MemoryBackbone`` (one process, the embedded default) and the Redis
backbone. Channels, the engine and the HTTP layer talk only to this interface.

What a backbone promises:
- ``append`` is atomic per task: seq numbers are assigned without gaps, the lifecycle rules of
  ``skillwire.protocol.lifecycle`` are applied, and nothing is appended to a finished task.
- Every appended event is kept in the task's log (at least the last ``max_events``) before
  it is handed to live listeners, and listeners of one process see one task's events in seq
  order. A listener registered before a log read therefore misses nothing that the read
  does not return (subscribe-then-replay, see ``channels._subscription``).
- Work items are delivered at least once; a claimed item not acked is delivered again.
- A task's terminal event and the webhook deliveries it calls for (one per URL: the task's own
  ``webhook_url``, then each of ``webhook_urls``) are created in the same atomic step, so
  one never exists without the other. A delivery attempt is claimed by one process at a
  time under a lease; each claim counts one attempt, and only the claim holding the current
  attempt may report its outcome (a lapsed claim is taken over as the next attempt).
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable
from typing import Any, Protocol

import msgspec

from skillwire.protocol import (
    DeliveryStatus,
    EncodedEvent,
    Event,
    EventType,
    ServiceUnavailable,
    Session,
    SessionSnapshot,
    SkillDeclaration,
    Task,
    TaskStatus,
    WorkerInfo,
)

__all__ = [
    "Backbone",
    "CancelListener",
    "Claim",
    "DeliveryListener",
    "DeliveryRecord",
    "EventListener",
    "FixedWindows",
    "Idempotency",
    "LogSlice",
    "StoredSession",
    "StoredTask",
    "WorkItem",
]

EventListener = Callable[[EncodedEvent], None]
CancelListener = Callable[[str], None]
DeliveryListener = Callable[[], None]


class Idempotency(msgspec.Struct, frozen=True):
    """An Idempotency-Key to take together with the task a call creates.

    ``key`` is the principal's name and the header's value; ``fingerprint`` identifies the
    request (a replay with another body is a conflict); the key is kept ``ttl`` seconds.
    """

    key: str
    fingerprint: str
    ttl: float


class WorkItem(msgspec.Struct):
    """A chain of sub-requests of one task, run one after another by one worker.

    A call's requests are split into ``max_parallel`` chains, so at most that many of them run
    at once without any shared counter.
    """

    task_id: str
    app: str
    skill: str
    owner: str
    indices: list[int]
    inputs: list[Any]


class Claim(msgspec.Struct):
    """A work item handed to one worker, to be acked when done."""

    item: WorkItem
    token: str = ""
    deliveries: int = 1
    enqueued_at: float = 0.0
    queue: str = ""  # the app/skill of a remote skill's queue it came from ("": the work queue)


class StoredTask(msgspec.Struct):
    task: Task
    owner: str
    webhook_url: str | None = None


class StoredSession(msgspec.Struct):
    session: Session
    owner: str


class DeliveryRecord(msgspec.Struct):
    """One webhook delivery as a backbone keeps it. Times are POSIX seconds.

    ``payload`` is the exact body sent on every attempt. ``attempts`` counts claims (an
    attempt is counted when it is claimed); ``round_start`` is how many attempts came before
    the current round of retries (a manual retry starts a new round).
    """

    id: str
    url: str
    task_id: str
    type: str
    status: DeliveryStatus
    payload: bytes
    created_at: float
    attempts: int = 0
    round_start: int = 0
    last_error: str | None = None
    next_attempt_at: float | None = None


class LogSlice(msgspec.Struct):
    """Events after some seq, and where the log stands."""

    events: list[EncodedEvent]
    first_seq: int  # the oldest seq still kept
    last_seq: int  # the task's last seq
    finished: bool


class FixedWindows(Protocol):
    """Rate-limit counters in fixed windows (a backbone's: shared by every process on it)."""

    async def hit(self, name: str, window: float) -> tuple[int, float]:
        """Count one hit in ``name``'s window (``window`` seconds long, opened by its first
        hit): the hits counted in it so far, and the seconds until it ends."""
        ...


class Backbone(abc.ABC):
    """Task records, event logs, live fan-out, the work queue and control signals."""

    name: str = "abstract"
    # Configured receivers of every finished task (``webhooks.urls``), besides its own URL.
    webhook_urls: tuple[str, ...] = ()
    # The rate limiter's counters, on the backbone's own connections; None when each process
    # counts alone (the memory backbone: the limiter keeps them in its memory).
    windows: FixedWindows | None = None

    # -- life ----------------------------------------------------------------------------
    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def check(self) -> None:
        """Return when the backbone answers; raise ``BackboneUnavailable`` otherwise."""

    @abc.abstractmethod
    async def id_secret(self) -> bytes:
        """The secret that signs task ids; the same in every process of one deployment."""

    # -- tasks ---------------------------------------------------------------------------
    @abc.abstractmethod
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
        """Store a new task with its first event, then queue its work.

        With ``idempotency``, the key is taken for this task in the same atomic step, so a
        creation that fails leaves no key behind and a key never names a task that does not
        exist. If the key was taken already, nothing is stored and the earlier
        ``(task_id, fingerprint)`` is returned; otherwise None.
        """

    @abc.abstractmethod
    async def get_task(self, task_id: str) -> StoredTask | None:
        """The task as clients see it (previews filled), or None when not stored."""

    @abc.abstractmethod
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
        """Newest first; ``owner=None`` lists every owner's tasks."""

    @abc.abstractmethod
    async def append(
        self, task_id: str, type_: EventType, index: int, data: Any
    ) -> list[EncodedEvent]:
        """Append a ``request.*`` event; returns what was appended (empty if discarded)."""

    def hand_work_to(self, taker: Callable[[Claim], bool]) -> None:
        """Offer new work straight to this process's worker pool, which takes it (True) while
        it has a free slot. Only a backbone whose work stays in this process does; a shared
        one keeps every item in the shared queue, for any worker to claim."""
        return None

    # Whether append_batch stores several events for the price of one (a round trip to a
    # shared store): then a skill's outputs are written behind it, several per step.
    batches_appends: bool = False

    async def append_batch(
        self, task_id: str, index: int, entries: list[tuple[EventType, Any]]
    ) -> tuple[int, list[EncodedEvent]]:
        """Append one sub-request's events in order: how many were applied (it stops at the
        first one refused, the task or request having finished) and the events appended."""
        appended: list[EncodedEvent] = []
        for applied, (type_, data) in enumerate(entries):
            events = await self.append(task_id, type_, index, data)
            if not events:
                return applied, appended
            appended.extend(events)
        return len(entries), appended

    def append_batch_soon(
        self, task_id: str, index: int, entries: list[tuple[EventType, Any]]
    ) -> asyncio.Future[int] | None:
        """``append_batch`` started at once, with no task of its own: the future of how many
        entries were applied (not the events), or None when this backbone cannot (then
        ``append_batch``). ``entries`` is read before it returns; cancelling the future stops
        the append if it still can."""
        return None

    @abc.abstractmethod
    async def cancel(self, task_id: str) -> Task:
        """Cancel a task everywhere: raises NotFound, or Conflict when already finished."""

    # -- log and fan-out -----------------------------------------------------------------
    @abc.abstractmethod
    async def read_events(self, task_id: str, after: int, limit: int) -> LogSlice | None:
        """Up to ``limit`` events with seq > ``after`` (None when the task is not stored)."""

    @abc.abstractmethod
    async def listen(self, task_id: str, listener: EventListener) -> Callable[[], None]:
        """Call ``listener`` with each event appended from now on; returns the undo."""

    # -- sessions (a second kind of log; see API.md "Sessions and task trees") -------------
    # A task whose ``session_id`` is set joins that session in ``create_task`` (refused with
    # NotFound or Conflict when the session is missing or closed, in the same atomic step), and
    # each event appended to it goes to the session's log in the same step as to its own.
    # The defaults say the backbone has no sessions; the memory backbone has them.
    async def create_session(self, session: Session, *, owner: str) -> None:
        raise _no_sessions(self)

    async def get_session(self, session_id: str) -> StoredSession | None:
        raise _no_sessions(self)

    async def list_sessions(
        self, *, owner: str | None, limit: int, offset: int
    ) -> tuple[list[Session], int]:
        """Newest first; ``owner=None`` lists every owner's sessions."""
        raise _no_sessions(self)

    async def close_session(self, session_id: str) -> Session:
        """Close a session: no task joins it from now on, its unfinished tasks are cancelled,
        then ``session.closed`` ends its log. Raises NotFound, or Conflict when closed."""
        raise _no_sessions(self)

    async def read_session_events(self, session_id: str, after: int, limit: int) -> LogSlice | None:
        """Up to ``limit`` session events with seq > ``after`` (None when not stored)."""
        raise _no_sessions(self)

    async def listen_session(self, session_id: str, listener: EventListener) -> Callable[[], None]:
        """Call ``listener`` with each session event appended from now on; returns the undo."""
        raise _no_sessions(self)

    async def session_snapshot(self, session_id: str, tasks: int) -> SessionSnapshot | None:
        """The session and its last ``tasks`` tasks, all as of the session's last seq."""
        raise _no_sessions(self)

    # -- work ----------------------------------------------------------------------------
    @abc.abstractmethod
    async def claim(self, consumer: str, count: int, timeout: float) -> list[Claim]:
        """Up to ``count`` work items, waiting up to ``timeout`` seconds for the first."""

    async def touch(self, consumer: str, claims: list[Claim]) -> None:
        """Renew the lease on claims still being worked on (so no one else takes them)."""
        return None

    async def queue_stats(self) -> tuple[int, float]:
        """Work items waiting to be claimed, and the age in seconds of the oldest."""
        return 0, 0.0

    @abc.abstractmethod
    async def ack(self, claim: Claim) -> None: ...

    @abc.abstractmethod
    async def requeue(self, claim: Claim) -> None:
        """Give a claimed item back (a worker shutting down before it finished)."""

    # -- control -------------------------------------------------------------------------
    @abc.abstractmethod
    def add_cancel_listener(self, listener: CancelListener) -> None:
        """``listener(task_id)`` is called in every process when a task is cancelled."""

    # -- small shared state --------------------------------------------------------------
    @abc.abstractmethod
    async def put_ticket(self, ticket: str, principal: str, ttl: float) -> None: ...

    @abc.abstractmethod
    async def take_ticket(self, ticket: str) -> str | None:
        """The principal's name, once: a ticket is spent by its first use."""

    # -- remote workers' skill declarations ------------------------------------------------
    @abc.abstractmethod
    async def declare_skill(self, declaration: SkillDeclaration, ttl: float) -> SkillDeclaration:
        """Keep ``declaration`` for ``ttl`` seconds unless one for the same ``app/skill`` is
        kept: returns the kept one (the new one when there was none). A kept declaration with
        the same contract (schema and mode) has its time renewed, so the first one to declare
        a skill fixes it for as long as some worker keeps declaring it."""

    @abc.abstractmethod
    async def declared_skills(self) -> list[SkillDeclaration]:
        """Every declaration still kept, by ``app/skill``."""

    @abc.abstractmethod
    async def declared_skill(self, app: str, skill: str) -> SkillDeclaration | None: ...

    # -- remote work: a shared backbone hands it to whichever process holds a free worker ----
    # True when remote skills' work can move between processes (one queue per skill).
    shares_remote_work: bool = False

    async def offer_remote(self, key: str, item: WorkItem) -> None:
        """Queue ``item`` for whichever process serving remote skill ``key`` has room."""
        raise self._no_shared_remote_work()

    async def claim_remote(
        self, consumer: str, wants: dict[str, int], timeout: float
    ) -> list[Claim]:
        """Up to ``wants[key]`` items of each remote skill's queue (lapsed claims first),
        waiting up to ``timeout`` seconds (0: not at all) for the first."""
        return []

    async def touch_remote(self, consumer: str, claims: list[Claim]) -> None:
        return None

    async def ack_remote(self, claim: Claim) -> None:
        return None

    async def requeue_remote(self, claim: Claim) -> None:
        raise self._no_shared_remote_work()

    def _no_shared_remote_work(self) -> RuntimeError:
        # Only a backbone whose ``shares_remote_work`` is true hands remote work between
        # processes; the engine calls these only then (one process keeps its own queue).
        return RuntimeError(f"{type(self).__name__} does not share remote work between processes")

    async def mark_serving(self, process: str, served: list[str], ttl: float) -> None:
        """This process has workers for these remote skills (for ``ttl`` seconds)."""
        return None

    async def unmark_serving(self, process: str, key: str) -> None:
        return None

    async def served_anywhere(self, key: str) -> bool:
        """Whether some process has a worker for remote skill ``key``."""
        return False

    async def count_remote_attempt(
        self, task_id: str, index: int, ttl: float, attempts: int = 1
    ) -> int | None:
        """Add ``attempts`` at a sub-request moving between processes on remote workers (kept
        ``ttl`` seconds, or until its claim is acked): the count so far; None where work stays
        in one process."""
        return None

    async def set_remote_deadline(self, task_id: str, index: int, at: float) -> None:
        """A sub-request queued with no worker anywhere fails at ``at`` (a Unix time) unless
        some process takes it first (``take_remote_deadline``)."""
        return None

    async def take_remote_deadline(self, task_id: str, index: int) -> float | None:
        """Remove the sub-request's deadline: its time if it had one (to this caller only)."""
        return None

    async def take_due_remote_deadlines(self, now: float) -> list[tuple[str, int]]:
        """Remove and return the sub-requests whose deadline is past (each to one caller)."""
        return []

    # -- presence of remote workers --------------------------------------------------------
    async def put_worker(self, info: WorkerInfo, ttl: float) -> None:
        """Record a connected worker for ``ttl`` seconds (its process renews it)."""
        return None

    async def drop_worker(self, worker_id: str) -> None:
        return None

    async def list_workers(self) -> list[WorkerInfo]:
        """Every recorded worker, by connection time (the memory backbone records none: its
        one process lists its own)."""
        return []

    # -- webhook deliveries ----------------------------------------------------------------
    @abc.abstractmethod
    async def claim_deliveries(
        self, count: int, lease: float
    ) -> tuple[list[DeliveryRecord], float | None]:
        """Claim up to ``count`` due deliveries for ``lease`` seconds, one attempt each.

        Due means pending with its next attempt at or before now, or claimed by a process
        whose lease lapsed. Each record comes back with ``attempts`` already counting this
        attempt. Also returns when the next delivery falls due (POSIX seconds), if any.
        """

    @abc.abstractmethod
    async def finish_attempt(
        self,
        delivery_id: str,
        attempt: int,
        *,
        delivered: bool,
        error: str | None,
        retry_at: float | None,
    ) -> bool:
        """Record how attempt ``attempt`` went: delivered, due again at ``retry_at``, or failed.

        False (and nothing changes) when that attempt no longer holds the claim.
        """

    @abc.abstractmethod
    async def retry_delivery(self, delivery_id: str) -> DeliveryRecord:
        """Make a delivery due now, as a new round of attempts under the same id.

        Raises NotFound, or Conflict while an attempt is in flight.
        """

    @abc.abstractmethod
    async def get_delivery(self, delivery_id: str) -> DeliveryRecord | None: ...

    @abc.abstractmethod
    async def list_deliveries(
        self, *, status: DeliveryStatus | None, limit: int, offset: int
    ) -> tuple[list[DeliveryRecord], int]:
        """Newest first; finished ones are kept for the retention window."""

    @abc.abstractmethod
    def add_delivery_listener(self, listener: DeliveryListener) -> None:
        """``listener()`` is called when this process created or re-queued a delivery."""


def _no_sessions(backbone: Backbone) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"sessions are not available on the {backbone.name} backbone",
        details={"backbone": backbone.name},
    )
