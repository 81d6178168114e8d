"""Backbones: where tasks, event logs, the work queue and control signals live."""

from __future__ import annotations

from ._base import (
    Backbone,
    CancelListener,
    Claim,
    DeliveryListener,
    DeliveryRecord,
    EventListener,
    FixedWindows,
    Idempotency,
    LogSlice,
    StoredTask,
    WorkItem,
)
from ._memory import MemoryBackbone

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
    "MemoryBackbone",
    "StoredTask",
    "WorkItem",
]
