"""The deliveries admin API: admin only, pages, status filter, errors in the envelope."""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.conftest import USER_KEY, RunningServer
from tests.webhooks.helpers import Receiver, call_echo, deliveries, server_with_hooks

Factory = Callable[..., RunningServer]


def test_deliveries_need_the_admin_permission(server_factory: Factory) -> None:
    """A user key gets 403 FORBIDDEN on the list and on a retry."""
    server = server_with_hooks(server_factory)
    with server.client(USER_KEY) as client:
        listed = client.get("/api/v1/webhooks/deliveries")
        retried = client.post("/api/v1/webhooks/deliveries/msg_x_0/retry")
    for response in (listed, retried):
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "FORBIDDEN"


def test_unknown_delivery_and_bad_parameters(server_factory: Factory) -> None:
    """Retrying an unknown id is 404; a bad status or limit is 400 BAD_REQUEST."""
    server = server_with_hooks(server_factory)
    with server.client() as client:
        missing = client.post("/api/v1/webhooks/deliveries/msg_nope_0/retry")
        bad_status = client.get("/api/v1/webhooks/deliveries", params={"status": "lost"})
        bad_limit = client.get("/api/v1/webhooks/deliveries", params={"limit": "0"})
        wrong_method = client.get("/api/v1/webhooks/deliveries/msg_nope_0/retry")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "NOT_FOUND"
    for response in (bad_status, bad_limit):
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "BAD_REQUEST"
    assert wrong_method.status_code == 405


def test_list_pages_newest_first(server_factory: Factory, receiver: Receiver) -> None:
    """limit and offset page through every delivery, newest first; total counts them all."""
    server = server_with_hooks(server_factory)
    with server.client() as client:
        tasks = [call_echo(client, f"{receiver.url}/{i}")["task_id"] for i in range(3)]
        receiver.wait(lambda seen: len(seen) == 3)
        everything = deliveries(client)
        first = deliveries(client, limit=2)
        rest = deliveries(client, limit=2, offset=2)
        deadline = time.monotonic() + 10
        while deliveries(client, status="delivered")["total"] < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        delivered = deliveries(client, status="delivered")
    assert everything["total"] == 3
    assert (everything["limit"], everything["offset"]) == (50, 0)
    assert [d["task_id"] for d in everything["items"]] == tasks[::-1]
    assert [d["task_id"] for d in first["items"] + rest["items"]] == tasks[::-1]
    assert (first["total"], rest["total"], rest["offset"]) == (3, 3, 2)
    assert delivered["total"] == 3
    assert set(delivered["items"][0]) == {
        "id",
        "url",
        "task_id",
        "type",
        "status",
        "attempts",
        "last_error",
        "next_attempt_at",
        "created_at",
    }
