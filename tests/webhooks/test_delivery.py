"""Deliveries to a real receiver on 127.0.0.1: signed, retried, timed out, dead-lettered."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest
import standardwebhooks

from skillwire.server.webhooks import _dispatcher as dispatcher
from tests.conftest import RunningServer, scaled
from tests.webhooks.helpers import (
    OTHER_SECRET,
    SECRET,
    Receiver,
    Reply,
    call_echo,
    deliveries,
    delivery_of,
    server_with_hooks,
    wait_delivery,
)

Factory = Callable[..., RunningServer]


def test_delivery_is_signed_and_carries_the_final_task(
    server_factory: Factory, receiver: Receiver
) -> None:
    """One POST with the Standard Webhooks headers, verified by ``standardwebhooks``; the
    body is {type, timestamp, data} with the task as GET shows it."""
    server = server_with_hooks(server_factory)
    with server.client() as client:
        task = call_echo(client, f"{receiver.url}/hook?x=1")
        (receipt,) = receiver.wait(lambda seen: len(seen) == 1)
        delivered = wait_delivery(client, task["task_id"], "delivered")
    assert receipt.path == "/hook?x=1"
    assert receipt.headers["content-type"] == "application/json"
    assert re.fullmatch(r"v1,[A-Za-z0-9+/]{43}=", receipt.headers["webhook-signature"])
    assert abs(int(receipt.headers["webhook-timestamp"]) - time.time()) < scaled(30)
    payload = standardwebhooks.Webhook(SECRET).verify(receipt.body, receipt.headers)
    assert payload["type"] == "task.completed"
    assert payload["data"] == task
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", payload["timestamp"])
    assert receipt.id == delivered["id"]
    assert receipt.attempt == 1
    assert delivered["attempts"] == 1
    assert delivered["url"] == f"{receiver.url}/hook?x=1"
    assert delivered["type"] == "task.completed"
    assert delivered["last_error"] is None
    assert delivered["next_attempt_at"] is None


def test_500_then_success_keeps_the_webhook_id(server_factory: Factory, receiver: Receiver) -> None:
    """A 500 is retried after the first delay; both attempts carry the same webhook-id, each
    with its own valid signature."""
    receiver.respond = lambda receipt, earlier: (
        Reply(500, body=b"busy") if earlier == 0 else Reply()
    )
    server = server_with_hooks(server_factory)
    with server.client() as client:
        task = call_echo(client, f"{receiver.url}/hook")
        first, second = receiver.wait(lambda seen: len(seen) == 2)
        delivered = wait_delivery(client, task["task_id"], "delivered")
    assert first.id == second.id == delivered["id"]
    assert (first.attempt, second.attempt) == (1, 2)
    assert second.at - first.at >= 0.2 * 0.9 - 0.02
    for receipt in (first, second):
        standardwebhooks.Webhook(SECRET).verify(receipt.body, receipt.headers)
    assert first.body == second.body
    assert delivered["attempts"] == 2


def test_a_receiver_slower_than_the_timeout_is_a_failed_attempt(
    server_factory: Factory, receiver: Receiver
) -> None:
    """An attempt is cut at webhooks.timeout and tried again; the last error says it timed out."""
    receiver.respond = lambda receipt, earlier: Reply(delay=5.0)
    server = server_with_hooks(server_factory, timeout=0.5, retry_delays=[0.2])
    with server.client() as client:
        started = time.monotonic()
        task = call_echo(client, f"{receiver.url}/slow")
        failed = wait_delivery(client, task["task_id"], "failed")
        elapsed = time.monotonic() - started
    assert failed["attempts"] == 2
    assert failed["last_error"] == "timed out after 0.5 s"
    assert len(receiver.receipts) == 2
    assert elapsed < scaled(4.0)  # both attempts were cut short of the receiver's 5 s


def test_retry_after_is_honoured(server_factory: Factory, receiver: Receiver) -> None:
    """A 503 with Retry-After: 1 pushes the next attempt back past the 0.2 s schedule."""
    receiver.respond = lambda receipt, earlier: (
        Reply(503, headers={"Retry-After": "1"}) if earlier == 0 else Reply()
    )
    server = server_with_hooks(server_factory)
    with server.client() as client:
        task = call_echo(client, f"{receiver.url}/hook")
        receiver.wait(lambda seen: len(seen) == 1)
        pending = wait_delivery(
            client, task["task_id"], "pending", where=lambda d: d["last_error"] is not None
        )
        first, second = receiver.wait(lambda seen: len(seen) == 2)
        wait_delivery(client, task["task_id"], "delivered")
    assert second.at - first.at >= 0.95
    assert pending["last_error"] == "HTTP 503: ok"


@pytest.mark.parametrize("header", ["²", "\uff11\uff12", "soon"])
def test_an_unreadable_retry_after_is_ignored(
    server_factory: Factory, receiver: Receiver, header: str
) -> None:
    """A 500 with a Retry-After that is no number nor date follows the schedule and ends failed."""
    raw = header.encode("utf-8").decode("latin-1")  # the receiver writes headers in latin-1
    receiver.respond = lambda receipt, earlier: Reply(500, headers={"Retry-After": raw})
    server = server_with_hooks(server_factory, retry_delays=[0.2])
    with server.client() as client:
        task = call_echo(client, f"{receiver.url}/hook")
        failed = wait_delivery(client, task["task_id"], "failed")
    assert failed["attempts"] == 2
    assert failed["last_error"] == "HTTP 500: ok"
    assert len(receiver.receipts) == 2


def test_an_unexpected_error_in_an_attempt_is_recorded(
    server_factory: Factory, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception while sending is a failed attempt, retried by the schedule, then failed."""

    def broken(value: str | None, now: float) -> float | None:
        raise RuntimeError("unforeseen")

    monkeypatch.setattr(dispatcher, "parse_retry_after", broken)
    receiver.respond = lambda receipt, earlier: Reply(500)
    server = server_with_hooks(server_factory, retry_delays=[0.2])
    with server.client() as client:
        task = call_echo(client, f"{receiver.url}/hook")
        failed = wait_delivery(client, task["task_id"], "failed")
    assert failed["attempts"] == 2
    assert failed["last_error"] == "internal error: RuntimeError: unforeseen"


def test_an_attempt_that_cannot_be_reported_ends_failed(
    server_factory: Factory, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception while scheduling the next attempt fails the delivery at once, recorded."""

    def broken(delays: list[float], attempt: int, retry_after: float | None) -> float | None:
        raise RuntimeError("no schedule")

    monkeypatch.setattr(dispatcher, "next_delay", broken)
    receiver.respond = lambda receipt, earlier: Reply(500)
    server = server_with_hooks(server_factory)
    with server.client() as client:
        task = call_echo(client, f"{receiver.url}/hook")
        failed = wait_delivery(client, task["task_id"], "failed")
    assert failed["attempts"] == 1
    assert failed["last_error"] == "internal error: RuntimeError: no schedule"
    assert len(receiver.receipts) == 1


def test_dead_letter_is_listed_and_retried_by_hand(
    server_factory: Factory, receiver: Receiver
) -> None:
    """After the last retry a delivery is failed, listed at ?status=failed with its attempts
    and last error; POST .../retry sends it again under the same webhook-id."""
    answer = {"status": 500}
    receiver.respond = lambda receipt, earlier: Reply(answer["status"], body=b"nope")
    server = server_with_hooks(server_factory)
    with server.client() as client:
        task = call_echo(client, f"{receiver.url}/hook")
        failed = wait_delivery(client, task["task_id"], "failed")
        assert failed["attempts"] == 4  # the first attempt and three retries
        assert failed["last_error"] == "HTTP 500: nope"
        assert failed["next_attempt_at"] is None
        listed = deliveries(client, status="failed")
        assert [d["id"] for d in listed["items"]] == [failed["id"]]
        assert listed["total"] == 1
        assert deliveries(client, status="pending")["total"] == 0
        assert len(receiver.receipts) == 4

        answer["status"] = 200
        response = client.post(f"/api/v1/webhooks/deliveries/{failed['id']}/retry")
        assert response.status_code == 202, response.text
        retried = response.json()
        assert (retried["id"], retried["status"]) == (failed["id"], "pending")
        assert retried["next_attempt_at"] is not None
        delivered = wait_delivery(client, task["task_id"], "delivered")
    fifth = receiver.wait(lambda seen: len(seen) == 5)[-1]
    assert fifth.id == failed["id"]
    assert fifth.attempt == 5
    standardwebhooks.Webhook(SECRET).verify(fifth.body, fifth.headers)
    assert delivered["attempts"] == 5
    assert delivered["last_error"] is None


def test_a_slow_receiver_does_not_delay_the_task(
    server_factory: Factory, receiver: Receiver
) -> None:
    """The call answers 200 completed at once while the receiver is still sleeping."""
    receiver.respond = lambda receipt, earlier: Reply(delay=3.0)
    server = server_with_hooks(server_factory, timeout=5.0)
    with server.client() as client:
        started = time.monotonic()
        task = call_echo(client, f"{receiver.url}/slow")
        assert time.monotonic() - started < scaled(1.5)
        delivery = delivery_of(client, task["task_id"])
        assert delivery is not None
        assert delivery["status"] == "pending"  # the task finished first
        receiver.wait(lambda seen: len(seen) == 1)  # the delivery is in flight meanwhile


def test_a_slow_receiver_does_not_block_other_deliveries(
    server_factory: Factory, receiver: Receiver
) -> None:
    """While one receiver holds its attempt, another task's delivery goes out at once."""
    receiver.respond = lambda receipt, earlier: Reply(delay=3.0 if "slow" in receipt.path else 0)
    server = server_with_hooks(server_factory, timeout=5.0)
    with server.client() as client:
        slow = call_echo(client, f"{receiver.url}/slow")
        receiver.wait(lambda seen: len(seen) == 1)
        started = time.monotonic()
        fast = call_echo(client, f"{receiver.url}/fast")
        wait_delivery(client, fast["task_id"], "delivered")
        assert time.monotonic() - started < scaled(2.0)
        slow_delivery = wait_delivery(client, slow["task_id"], "pending", timeout=1)
        assert slow_delivery["attempts"] == 1  # still in its first attempt


def test_cancel_is_delivered(server_factory: Factory, receiver: Receiver) -> None:
    """DELETE of a running task delivers task.cancelled with the cancelled task."""
    server = server_with_hooks(server_factory)
    with server.client() as client:
        response = client.post(
            "/api/v1/apps/demo/countdown",
            json={"requests": [{"n": 1000, "interval": 0.05}], "webhook_url": receiver.url},
        )
        assert response.status_code == 202, response.text
        task_id = response.json()["task_id"]
        cancelled = client.delete(f"/api/v1/tasks/{task_id}")
        assert cancelled.status_code == 200
    (receipt,) = receiver.wait(lambda seen: len(seen) == 1)
    payload = standardwebhooks.Webhook(SECRET).verify(receipt.body, receipt.headers)
    assert payload["type"] == "task.cancelled"
    assert payload["data"]["task_id"] == task_id
    assert payload["data"]["status"] == "cancelled"


def test_configured_urls_get_every_task_with_their_own_secret(
    server_factory: Factory, receiver: Receiver
) -> None:
    """webhooks.urls receive every finished task too, each under its own webhook-id, signed
    with the URL's entry in webhooks.secrets when it has one."""
    everything = f"{receiver.url}/all"
    server = server_with_hooks(
        server_factory, urls=[everything], secrets={everything: OTHER_SECRET}
    )
    with server.client() as client:
        failed = client.post("/api/v1/apps/demo/fail", json={"requests": [{"message": "x"}]})
        assert failed.status_code == 200
        task = call_echo(client, f"{receiver.url}/own")
    seen = receiver.wait(lambda seen: len(seen) == 3)
    by_path = {r.path: r for r in seen if r.json()["data"]["task_id"] == task["task_id"]}
    own, shared = by_path["/own"], by_path["/all"]
    assert own.id.endswith("_0")
    assert shared.id.endswith("_1")
    standardwebhooks.Webhook(SECRET).verify(own.body, own.headers)
    standardwebhooks.Webhook(OTHER_SECRET).verify(shared.body, shared.headers)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(SECRET).verify(shared.body, shared.headers)
    other = next(r for r in seen if r.json()["data"]["task_id"] != task["task_id"])
    assert other.json()["type"] == "task.failed"


def test_without_a_secret_one_is_derived_and_printed(
    server_factory: Factory, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """With no webhooks.secret, deliveries are signed with a generated secret printed once."""
    server = server_with_hooks(server_factory, secret=None)
    with server.client() as client:
        call_echo(client, receiver.url)
    (receipt,) = receiver.wait(lambda seen: len(seen) == 1)
    printed = [
        line.removeprefix("Webhook secret: ")
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("Webhook secret: ")
    ]
    assert len(printed) == 1
    standardwebhooks.Webhook(printed[0]).verify(receipt.body, receipt.headers)
