"""Delivery records as the admin API shows them, and the protocol structs round-trip."""

from __future__ import annotations

import msgspec

from skillwire.protocol import Delivery, DeliveryList, DeliveryStatus, encode
from skillwire.server.backbone import DeliveryRecord
from skillwire.server.webhooks import delivery_view


def test_delivery_view_formats_times_and_hides_the_payload() -> None:
    """Times become RFC 3339; the payload and the round bookkeeping are not shown."""
    record = DeliveryRecord(
        id="msg_a_0",
        url="https://r.example/h",
        task_id="tsk_a",
        type="task.completed",
        status=DeliveryStatus.PENDING,
        payload=b"{}",
        created_at=1_800_000_000.25,
        attempts=2,
        round_start=1,
        last_error="HTTP 500",
        next_attempt_at=1_800_000_030.5,
    )
    view = msgspec.to_builtins(delivery_view(record))
    assert view == {
        "id": "msg_a_0",
        "url": "https://r.example/h",
        "task_id": "tsk_a",
        "type": "task.completed",
        "status": "pending",
        "attempts": 2,
        "last_error": "HTTP 500",
        "next_attempt_at": "2027-01-15T08:00:30.500000Z",
        "created_at": "2027-01-15T08:00:00.250000Z",
    }
    finished = msgspec.structs.replace(record, status=DeliveryStatus.FAILED, next_attempt_at=None)
    assert delivery_view(finished).next_attempt_at is None


def test_delivery_list_round_trips() -> None:
    """DeliveryList encodes and decodes back to itself."""
    item = Delivery(
        id="msg_a_0",
        url="https://r.example/h",
        task_id="tsk_a",
        type="task.failed",
        status=DeliveryStatus.DELIVERED,
        attempts=1,
        last_error=None,
        next_attempt_at=None,
        created_at="2027-01-15T08:00:00.250000Z",
    )
    page = DeliveryList(items=[item], total=1, limit=50, offset=0)
    assert msgspec.json.decode(encode(page), type=DeliveryList) == page
