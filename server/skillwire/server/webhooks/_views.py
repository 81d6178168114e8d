"""Deliveries as the admin API shows them."""

from __future__ import annotations

from skillwire.protocol import Delivery, format_time

from ..backbone import DeliveryRecord

__all__ = ["delivery_view"]


def delivery_view(record: DeliveryRecord) -> Delivery:
    return Delivery(
        id=record.id,
        url=record.url,
        task_id=record.task_id,
        type=record.type,
        status=record.status,
        attempts=record.attempts,
        last_error=record.last_error,
        next_attempt_at=(
            format_time(record.next_attempt_at) if record.next_attempt_at is not None else None
        ),
        created_at=format_time(record.created_at),
    )
