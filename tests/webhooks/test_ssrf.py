"""The SSRF guard: which webhook URLs are refused, at call time and at delivery time."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from websockets.sync.client import connect

from skillwire.server.webhooks import UnsafeUrl, UrlGuard
from tests.conftest import ADMIN_KEY, RunningServer, scaled, start_server
from tests.webhooks.helpers import Receiver, call_echo, server_with_hooks, wait_delivery

REFUSED = [
    "http://10.0.0.1/hook",
    "http://127.0.0.1:8080/hook",
    "http://[::1]/hook",
    "http://169.254.169.254/latest/meta-data/",
    "ftp://example.org/hook",
    "http://localhost/hook",  # a host name that resolves to 127.0.0.1
    "http://[2002:7f00:1::]/hook",  # 6to4 wrapping 127.0.0.1
    "http://[::a9fe:a9fe]/hook",  # IPv4-compatible 169.254.169.254
]

# Cloud metadata and credential endpoints, plainly and wrapped in IPv6: refused whatever the
# configuration says.
METADATA = [
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.170.2/v2/credentials/x",  # AWS ECS task credentials
    "http://169.254.170.23/v1/credentials",  # AWS EKS Pod Identity
    "http://[fd00:ec2::254]/",
    "http://[fd00:ec2::23]/",  # AWS EKS Pod Identity over IPv6
    "http://100.100.100.200/",
    "http://168.63.129.16/",  # Azure WireServer
    "http://[::ffff:169.254.169.254]/",  # IPv4-mapped
    "http://[::a9fe:a9fe]/",  # IPv4-compatible
    "http://[::ffff:0:a9fe:a9fe]/",  # IPv4-translated (SIIT)
    "http://[64:ff9b::a9fe:a9fe]/",  # the well-known NAT64 prefix
    "http://[64:ff9b::169.254.170.2]/",
    "http://[64:ff9b:1:a9fe:a9:fe00::]/",  # a local-use NAT64 prefix: /48,
    "http://[64:ff9b:1:a9:fe:a9fe::]/",  # /56,
    "http://[64:ff9b:1:0:a9:fea9:fe00:0]/",  # /64
    "http://[2002:a9fe:a9fe::1]/",  # 6to4
    "http://[2001:0:4136:e378:8000:63bf:5601:5601]/",  # Teredo, client 169.254.169.254
]


def check(guard: UrlGuard, url: str) -> None:
    asyncio.run(guard.check(url))


def refusal(guard: UrlGuard, url: str) -> str:
    with pytest.raises(UnsafeUrl) as caught:
        check(guard, url)
    return str(caught.value)


# -- the guard itself ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://10.0.0.1/", "private"),
        ("http://192.168.1.10/", "private"),
        ("http://172.16.0.1/", "private"),
        ("http://127.0.0.1/", "loopback"),
        ("http://127.1.2.3/", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://[::]/", "unspecified"),
        ("http://169.254.10.10/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://224.0.0.1/", "multicast"),
        ("http://240.0.0.1/", "reserved"),
        ("http://100.64.0.1/", "non-public"),
        ("http://169.254.169.254/", "cloud metadata"),
        ("http://[fd00:ec2::254]/", "cloud metadata"),
        ("http://2130706433/", "loopback"),  # 127.0.0.1 spelled as one number
        ("http://localhost:9/", "loopback"),
        ("http://[2002:7f00:1::]/", "wrapping 127.0.0.1, a loopback"),  # 6to4
        ("http://[2002:a00:1::]/", "wrapping 10.0.0.1, a private"),
        ("http://[64:ff9b::7f00:1]/", "wrapping 127.0.0.1, a loopback"),  # NAT64
        ("http://[::ffff:0:a00:1]/", "wrapping 10.0.0.1, a private"),  # SIIT
        ("http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/", "wrapping 10.0.0.1, a private"),
    ],
)
def test_non_public_addresses_are_refused(url: str, kind: str) -> None:
    """Private, loopback, link-local, multicast, reserved, unspecified and metadata addresses."""
    assert kind in refusal(UrlGuard(allow_private=False, allow_hosts=[]), url)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.org/x",
        "file:///etc/passwd",
        "gopher://example.org/",
        "javascript:alert(1)",
        "http:///no-host",
        "http://exa mple.org/",
        "http://example.org:99999/",
        "https://example.org/" + "a" * 2100,
        "",
    ],
)
def test_malformed_and_non_http_urls_are_refused(url: str) -> None:
    """Only well-formed http and https URLs pass, before any lookup."""
    guard = UrlGuard(allow_private=True, allow_hosts=[])
    with pytest.raises(UnsafeUrl):
        guard.parse(url)


def test_public_addresses_pass() -> None:
    """A public address literal passes (no lookup, no connection), also wrapped in 6to4."""
    guard = UrlGuard(allow_private=False, allow_hosts=[])
    check(guard, "https://93.184.216.34/hook")
    check(guard, "http://[2606:4700::1111]:8443/hook")
    check(guard, "http://[2002:5db8:d822::1]/hook")  # 6to4 wrapping 93.184.216.34


@pytest.mark.parametrize("allow_private", [False, True])
@pytest.mark.parametrize("url", METADATA)
def test_metadata_is_refused_in_every_spelling(url: str, allow_private: bool) -> None:
    """Metadata endpoints, also wrapped in IPv6 (mapped, compatible, SIIT, NAT64, 6to4,
    Teredo), are refused with or without allow_private."""
    guard = UrlGuard(allow_private=allow_private, allow_hosts=[])
    assert "cloud metadata" in refusal(guard, url)


def test_allow_hosts_does_not_open_metadata() -> None:
    """A host in allow_hosts that resolves to a metadata address is still refused."""
    guard = UrlGuard(allow_private=False, allow_hosts=["hooks.internal.example"])

    async def lookup(host: str, port: int) -> list[Any]:
        return [ipaddress.ip_address("10.0.0.7"), ipaddress.ip_address("fd00:ec2::23")]

    guard._lookup = lookup  # type: ignore[method-assign]
    message = refusal(guard, "http://hooks.internal.example/hook")
    assert "fd00:ec2::23" in message
    assert "cloud metadata" in message


def test_allow_private_lets_private_addresses_through_but_not_metadata() -> None:
    """allow_private opens private and loopback addresses; cloud metadata stays refused."""
    guard = UrlGuard(allow_private=True, allow_hosts=[])
    check(guard, "http://127.0.0.1:9/hook")
    check(guard, "http://10.1.2.3/hook")
    check(guard, "http://localhost:9/hook")
    check(guard, "http://[64:ff9b::a00:1]/hook")  # NAT64 to 10.0.0.1: private, so allowed
    check(guard, "http://[2002:7f00:1::]/hook")  # 6to4 to 127.0.0.1
    assert "cloud metadata" in refusal(guard, "http://169.254.169.254/")
    assert "cloud metadata" in refusal(guard, "http://[fd00:ec2::254]/")


def test_allow_hosts_lets_one_host_through() -> None:
    """A host in allow_hosts passes whatever it resolves to; other hosts still do not."""
    guard = UrlGuard(allow_private=False, allow_hosts=["localhost", "*.internal.example"])
    check(guard, "http://localhost:9/hook")
    check(guard, "http://LOCALHOST.:9/hook")
    assert guard.host_allowed("hooks.internal.example")
    assert not guard.host_allowed("internal.example.org")
    assert "loopback" in refusal(guard, "http://127.0.0.1:9/hook")


# -- at call time --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def strict_server() -> Iterator[RunningServer]:
    """A server with the default guard (no private addresses)."""
    running = start_server({"webhooks": {"allow_private": False}})
    yield running
    running.stop()


@pytest.mark.parametrize("url", REFUSED)
def test_refused_url_is_422_at_call_time(strict_server: RunningServer, url: str) -> None:
    """POST with a refused webhook_url answers 422 VALIDATION_ERROR naming webhook_url."""
    with strict_server.client() as client:
        response = client.post(
            "/api/v1/apps/demo/echo", json={"requests": [{"text": "a"}], "webhook_url": url}
        )
        listed = client.get("/api/v1/tasks").json()["total"]
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert error["details"]["field"] == "webhook_url"
    assert listed == 0  # no task was created


def ws_call(server: RunningServer, url: str) -> dict[str, Any]:
    """Send one WS ``call`` op with ``webhook_url`` and return the reply to its ref."""
    with connect(
        f"{server.ws_url}/api/v1/ws",
        subprotocols=["skillwire.v1"],  # type: ignore[list-item]
        additional_headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        open_timeout=scaled(10),
    ) as conn:
        call = {"op": "call", "ref": "r1", "app": "demo", "skill": "echo"}
        conn.send(json.dumps({**call, "requests": [{"text": "a"}], "webhook_url": url}))
        while True:
            frame = conn.recv(timeout=scaled(10))
            assert isinstance(frame, str)
            for line in frame.split("\n"):
                message: dict[str, Any] = json.loads(line)
                if message.get("ref") == "r1":
                    return message


@pytest.fixture(scope="module")
def open_server() -> Iterator[RunningServer]:
    """A server whose webhooks may reach private and loopback addresses."""
    running = start_server({"webhooks": {"allow_private": True}})
    yield running
    running.stop()


@pytest.mark.parametrize("url", METADATA)
def test_metadata_is_422_at_call_time_with_allow_private(
    open_server: RunningServer, url: str
) -> None:
    """allow_private does not open any spelling of a metadata address to a call's webhook_url."""
    with open_server.client() as client:
        response = client.post(
            "/api/v1/apps/demo/echo", json={"requests": [{"text": "a"}], "webhook_url": url}
        )
    assert response.status_code == 422, response.text
    assert "cloud metadata" in response.json()["error"]["details"]["constraint"]


@pytest.mark.parametrize("url", ["http://169.254.169.254/", "http://localhost/hook"])
def test_refused_url_is_an_op_error_on_websocket(strict_server: RunningServer, url: str) -> None:
    """The WS call op answers an op error VALIDATION_ERROR naming webhook_url."""
    reply = ws_call(strict_server, url)
    assert reply["op"] == "error"
    assert reply["error"]["code"] == "VALIDATION_ERROR"
    assert reply["error"]["details"]["field"] == "webhook_url"


def test_allow_hosts_lets_a_call_through_and_delivers(
    server_factory: Callable[..., RunningServer], receiver: Receiver
) -> None:
    """With "localhost" in allow_hosts, a loopback receiver named localhost gets the delivery."""
    server = server_with_hooks(server_factory, allow_private=False, allow_hosts=["localhost"])
    url = f"http://localhost:{receiver.port}/hook"
    with server.client() as client:
        task = call_echo(client, url)
        refused = client.post(
            "/api/v1/apps/demo/echo",
            json={"requests": [{"text": "a"}], "webhook_url": f"{receiver.url}/hook"},
        )
        assert refused.status_code == 422  # 127.0.0.1 itself is not listed
        wait_delivery(client, task["task_id"], "delivered")
    assert [r.json()["data"]["task_id"] for r in receiver.receipts] == [task["task_id"]]


def test_ws_call_with_a_webhook_url_delivers(
    server_factory: Callable[..., RunningServer], receiver: Receiver
) -> None:
    """A WS call op with an allowed webhook_url is accepted and its result is delivered."""
    server = server_with_hooks(server_factory)
    reply = ws_call(server, f"{receiver.url}/ws")
    assert reply["op"] == "accepted"
    receipts = receiver.wait(lambda seen: len(seen) == 1)
    assert receipts[0].json()["data"]["task_id"] == reply["task_id"]


# -- at delivery time ----------------------------------------------------------------------
def test_refused_at_delivery_time_fails_without_retry(
    server_factory: Callable[..., RunningServer], receiver: Receiver
) -> None:
    """A configured loopback URL is refused when sending: failed after one attempt, unsent."""
    server = server_with_hooks(server_factory, allow_private=False, urls=[f"{receiver.url}/cfg"])
    with server.client() as client:
        task = call_echo(client, None)
        failed = wait_delivery(client, task["task_id"], "failed")
    assert failed["attempts"] == 1
    assert failed["last_error"].startswith("refused: ")
    assert "loopback" in failed["last_error"]
    assert receiver.receipts == []
