"""Durability on Redis: pending deliveries survive a restart; two gateways never double-send.

The memory backbone keeps deliveries in the process: a restart loses them (documented in
docs/webhooks.md), so these tests run on Redis only.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import pytest
import standardwebhooks

from tests.conftest import RunningServer
from tests.webhooks.helpers import (
    SECRET,
    Receiver,
    Reply,
    call_echo,
    server_with_hooks,
    wait_delivery,
)

Factory = Callable[..., RunningServer]
redis_only = pytest.mark.parametrize("backbone", ["redis"], indirect=True)


@redis_only
def test_a_pending_retry_survives_a_restart(server_factory: Factory, receiver: Receiver) -> None:
    """Stopped with a retry pending, the next server on the same Redis sends it."""
    receiver.respond = lambda receipt, earlier: Reply(500) if earlier == 0 else Reply()
    first = server_with_hooks(server_factory, retry_delays=[1.5])
    with first.client() as client:
        task = call_echo(client, f"{receiver.url}/hook")
        receiver.wait(lambda seen: len(seen) == 1)
        wait_delivery(client, task["task_id"], "pending", where=lambda d: d["last_error"])
    first.stop()
    time.sleep(1.8)  # past the retry's due time, with no server running
    assert len(receiver.receipts) == 1

    second = server_with_hooks(server_factory, retry_delays=[1.5])
    with second.client() as client:
        delivered = wait_delivery(client, task["task_id"], "delivered")
    one, two = receiver.receipts
    assert one.id == two.id == delivered["id"]
    assert (one.attempt, two.attempt) == (1, 2)
    standardwebhooks.Webhook(SECRET).verify(two.body, two.headers)


@redis_only
def test_an_attempt_interrupted_by_a_stop_is_sent_again(
    server_factory: Factory, receiver: Receiver
) -> None:
    """A server stopped mid-attempt gives the delivery back; the next server sends it at once."""
    receiver.respond = lambda receipt, earlier: Reply(delay=30.0) if earlier == 0 else Reply()
    first = server_with_hooks(server_factory, timeout=60.0)
    with first.client() as client:
        task = call_echo(client, f"{receiver.url}/hook")
    receiver.wait(lambda seen: len(seen) == 1)
    first.stop()

    second = server_with_hooks(server_factory, timeout=60.0)
    with second.client() as client:
        delivered = wait_delivery(client, task["task_id"], "delivered")
    assert [r.attempt for r in receiver.receipts] == [1, 2]
    assert delivered["attempts"] == 2


@redis_only
def test_two_gateways_never_send_the_same_attempt(
    server_factory: Factory, receiver: Receiver
) -> None:
    """Two servers on one Redis deliver every webhook, each attempt exactly once."""
    receiver.respond = lambda receipt, earlier: (
        Reply(500) if earlier == 0 and receipt.path.endswith("/odd") else Reply()
    )
    gateways = [server_with_hooks(server_factory) for _ in range(2)]
    tasks = []
    for i in range(20):
        with gateways[i % 2].client() as client:
            kind = "odd" if i % 2 else "even"
            tasks.append(call_echo(client, f"{receiver.url}/{i}/{kind}")["task_id"])
    receiver.wait(lambda seen: len(seen) == 30)  # 10 first attempts fail, then succeed
    time.sleep(1.0)  # room for any double send to show up
    sends = Counter((r.id, r.attempt) for r in receiver.receipts)
    assert set(sends.values()) == {1}
    assert len({r.id for r in receiver.receipts}) == 20
    with gateways[0].client() as client:
        for task_id in tasks:
            wait_delivery(client, task_id, "delivered")
    for gateway in gateways:  # both took part: they competed for the same queue
        registry = gateway.runtime.metrics.registry
        sent = registry.get_sample_value(
            "skillwire_webhook_attempts_total", {"outcome": "delivered"}
        )
        assert sent is not None
        assert sent >= 1
