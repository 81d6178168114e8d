"""A real webhook receiver on 127.0.0.1 (raw asyncio HTTP/1.1 in a thread), and helpers."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.conftest import RunningServer, scaled

SECRET = "whsec_" + base64.b64encode(b"skillwire webhook test secret 32").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"another webhook test secret, 32b").decode()


def hooks(**webhooks: Any) -> dict[str, Any]:
    """Server overrides: loopback receivers allowed, a fast retry schedule, a known secret."""
    settings: dict[str, Any] = {
        "allow_private": True,
        "retry_delays": [0.2, 0.4, 0.6],
        "secret": SECRET,
        "timeout": 2.0,
        "poll_interval": 0.2,
    }
    settings.update(webhooks)
    return {"webhooks": settings}


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay: float = 0.0


@dataclass
class Receipt:
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    at: float  # time.monotonic() on arrival

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def attempt(self) -> int:
        return int(self.headers["skillwire-attempt"])

    def json(self) -> Any:
        return json.loads(self.body)


Responder = Callable[[Receipt, int], Reply]


class Receiver:
    """Records every POST; ``respond(receipt, earlier)`` decides the answer, where ``earlier``
    counts the receipts with the same ``webhook-id`` before this one."""

    def __init__(self) -> None:
        self.receipts: list[Receipt] = []
        self.respond: Responder = lambda receipt, earlier: Reply()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="receiver", daemon=True)
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()

        async def listen() -> int:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            port: int = self._server.sockets[0].getsockname()[1]
            return port

        self.port = asyncio.run_coroutine_threadsafe(listen(), self._loop).result(scaled(5))

    def stop(self) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            for handler in list(self._handlers):
                handler.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(scaled(5))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(scaled(5))
        self._loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            request_line, *lines = head.split("\r\n")
            headers: dict[str, str] = {}
            for line in lines:
                name, sep, value = line.partition(":")
                if sep:
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            receipt = Receipt(request_line.split(" ")[1], headers, body, time.monotonic())
            with self._lock:
                earlier = sum(
                    1
                    for r in self.receipts
                    if r.headers.get("webhook-id") == receipt.headers.get("webhook-id")
                )
                self.receipts.append(receipt)
            reply = self.respond(receipt, earlier)
            if reply.delay:
                await asyncio.sleep(reply.delay)
            extra = "".join(f"{k}: {v}\r\n" for k, v in reply.headers.items())
            writer.write(
                f"HTTP/1.1 {reply.status} Whatever\r\nContent-Length: {len(reply.body)}\r\n"
                f"Connection: close\r\n{extra}\r\n".encode("latin-1")
                + reply.body
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()

    # -- reading what arrived ---------------------------------------------------------------
    def of(self, webhook_id: str) -> list[Receipt]:
        with self._lock:
            return [r for r in self.receipts if r.headers.get("webhook-id") == webhook_id]

    def wait(
        self, predicate: Callable[[list[Receipt]], bool], timeout: float = 10.0
    ) -> list[Receipt]:
        """Poll until ``predicate(receipts)`` holds; return the receipts then."""
        deadline = time.monotonic() + scaled(timeout)
        while True:
            with self._lock:
                seen = list(self.receipts)
            if predicate(seen):
                return seen
            if time.monotonic() > deadline:
                raise AssertionError(f"receiver: condition not met; got {len(seen)} receipts")
            time.sleep(0.02)


def call_echo(
    client: httpx.Client, webhook_url: str | None, text: str = "hi", **extra: Any
) -> dict[str, Any]:
    """Call demo/echo with a webhook URL and return the finished task."""
    body: dict[str, Any] = {"requests": [{"text": text}], **extra}
    if webhook_url is not None:
        body["webhook_url"] = webhook_url
    response = client.post("/api/v1/apps/demo/echo", json=body)
    assert response.status_code == 200, response.text
    task: dict[str, Any] = response.json()
    assert task["status"] == "completed", task
    return task


def deliveries(client: httpx.Client, **params: Any) -> dict[str, Any]:
    response = client.get("/api/v1/webhooks/deliveries", params=params)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


def delivery_of(client: httpx.Client, task_id: str) -> dict[str, Any] | None:
    """The (first) delivery of ``task_id``, if listed."""
    items = deliveries(client, limit=1000)["items"]
    return next((d for d in items if d["task_id"] == task_id), None)


def wait_delivery(
    client: httpx.Client,
    task_id: str,
    status: str,
    timeout: float = 10.0,
    where: Callable[[dict[str, Any]], bool] = lambda delivery: True,
) -> dict[str, Any]:
    """Poll the admin list until the task's delivery has ``status`` (and ``where`` holds)."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        found = delivery_of(client, task_id)
        if found is not None and found["status"] == status and where(found):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"delivery of {task_id} never became {status}: {found}")
        time.sleep(0.05)


def server_with_hooks(factory: Callable[..., RunningServer], **webhooks: Any) -> RunningServer:
    return factory({"heartbeat_interval": 0.5, **hooks(**webhooks)})
