"""Webhook deliveries in this process's memory (the memory backbone's durable-in-name queue).

Records live in a dict, pending ones are ordered by a due-time heap (stale entries are skipped
when popped), and claims carry a lease like the Redis backbone's, so both backbones behave
alike. Nothing here survives the process: the memory backbone is not durable.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable

import msgspec

from skillwire.protocol import Conflict, DeliveryStatus, NotFound

from ._base import DeliveryListener, DeliveryRecord

__all__ = ["MemoryDeliveries", "delivery_id_prefix", "webhook_targets"]


def delivery_id_prefix(task_id: str) -> str:
    """Delivery ids are ``msg_<task id without its prefix>_<n>``: unique, and one per URL."""
    return "msg_" + task_id.partition("_")[2] + "_"


def webhook_targets(own: str | None, configured: Iterable[str]) -> list[str]:
    """The task's own URL first, then the configured ones; each URL once."""
    targets: list[str] = []
    for url in (own, *configured):
        if url and url not in targets:
            targets.append(url)
    return targets


class MemoryDeliveries:
    def __init__(self, retention: float) -> None:
        self._retention = retention
        self._records: dict[str, DeliveryRecord] = {}
        self._due: list[tuple[float, int, str]] = []  # (due time, tie-break, id)
        self._tie = itertools.count()
        self._claimed: dict[str, float] = {}  # id -> when its lease lapses
        self._finished: dict[str, float] = {}  # id -> when it was delivered or failed
        self._listeners: list[DeliveryListener] = []

    def add_listener(self, listener: DeliveryListener) -> None:
        self._listeners.append(listener)

    def _notify(self) -> None:
        for listener in list(self._listeners):
            listener()

    def _schedule(self, record: DeliveryRecord, when: float) -> None:
        record.next_attempt_at = when
        heapq.heappush(self._due, (when, next(self._tie), record.id))

    def create(self, task_id: str, urls: list[str], type_: str, payload: bytes, now: float) -> None:
        prefix = delivery_id_prefix(task_id)
        for n, url in enumerate(urls):
            record = DeliveryRecord(
                id=f"{prefix}{n}",
                url=url,
                task_id=task_id,
                type=type_,
                status=DeliveryStatus.PENDING,
                payload=payload,
                created_at=now,
            )
            self._records[record.id] = record
            self._schedule(record, now)
        if urls:
            self._notify()

    def _next_due(self) -> float | None:
        while self._due:
            when, _, delivery_id = self._due[0]
            record = self._records.get(delivery_id)
            if (
                record is not None
                and record.status is DeliveryStatus.PENDING
                and record.next_attempt_at == when
                and delivery_id not in self._claimed
            ):
                break
            heapq.heappop(self._due)  # stale: finished, rescheduled or claimed since
        leases = min(self._claimed.values(), default=None)
        due = self._due[0][0] if self._due else None
        if leases is None or due is None:
            return due if leases is None else leases
        return min(due, leases)

    def claim(
        self, count: int, lease: float, now: float
    ) -> tuple[list[DeliveryRecord], float | None]:
        taken = [i for i, lapses in self._claimed.items() if lapses <= now][:count]
        while len(taken) < count:
            next_due = self._next_due()
            if next_due is None or not self._due or self._due[0][0] > now:
                break
            taken.append(heapq.heappop(self._due)[2])
        claimed = []
        for delivery_id in taken:
            record = self._records[delivery_id]
            record.attempts += 1
            record.next_attempt_at = None
            self._claimed[delivery_id] = now + lease
            claimed.append(msgspec.structs.replace(record))
        return claimed, self._next_due()

    def finish(
        self,
        delivery_id: str,
        attempt: int,
        *,
        delivered: bool,
        error: str | None,
        retry_at: float | None,
        now: float,
    ) -> bool:
        record = self._records.get(delivery_id)
        if record is None or delivery_id not in self._claimed or record.attempts != attempt:
            return False
        del self._claimed[delivery_id]
        record.last_error = None if delivered else error
        if delivered or retry_at is None:
            record.status = DeliveryStatus.DELIVERED if delivered else DeliveryStatus.FAILED
            self._finished[delivery_id] = now
        else:
            self._schedule(record, retry_at)
        return True

    def retry(self, delivery_id: str, now: float) -> DeliveryRecord:
        record = self._records.get(delivery_id)
        if record is None:
            raise NotFound(f"delivery {delivery_id} not found", details={"id": delivery_id})
        if delivery_id in self._claimed:
            raise Conflict(
                f"delivery {delivery_id} is being attempted right now", details={"id": delivery_id}
            )
        record.status = DeliveryStatus.PENDING
        record.round_start = record.attempts
        self._finished.pop(delivery_id, None)
        self._schedule(record, now)
        self._notify()
        return msgspec.structs.replace(record)

    def get(self, delivery_id: str) -> DeliveryRecord | None:
        record = self._records.get(delivery_id)
        return msgspec.structs.replace(record) if record is not None else None

    def list(
        self, status: DeliveryStatus | None, limit: int, offset: int
    ) -> tuple[list[DeliveryRecord], int]:
        matches = [r for r in self._records.values() if status is None or r.status is status]
        matches.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        page = matches[offset : offset + limit]
        return [msgspec.structs.replace(r) for r in page], len(matches)

    def sweep(self, now: float) -> None:
        """Forget delivered and failed deliveries past the retention window."""
        cutoff = now - self._retention
        for delivery_id in [i for i, when in self._finished.items() if when < cutoff]:
            del self._finished[delivery_id]
            self._records.pop(delivery_id, None)
