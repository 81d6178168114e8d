"""The quick call's lean path: its endpoint answers as Starlette's general path would, and
the one request-context layer (ids, log, metrics, rate limit) heads every response."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.requests import ClientDisconnect, Request

from skillwire.protocol import Task, validate
from skillwire.server import create_app
from skillwire.server._config import load_config
from skillwire.server.http._body import receive_chunks
from skillwire.server.http._responses import JSONResponse
from tests.conftest import ADMIN_KEY

Message = dict[str, Any]
ECHO = "/api/v1/apps/demo/echo"
COUNTDOWN = "/api/v1/apps/demo/countdown"
_VARYING = (b"x-request-id", b"x-ratelimit-remaining")


def _scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def _call(
    app: Any,
    method: str,
    path: str,
    body: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """One request straight into the ASGI app: its status, headers and body, but for the
    headers that differ from request to request (X-Request-ID, X-RateLimit-Remaining)."""
    given = (
        headers if headers is not None else [(b"authorization", b"Bearer " + ADMIN_KEY.encode())]
    )
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(_scope(method, path, given), receive, send)
    start = sent[0]
    kept = [(k, v) for k, v in start["headers"] if k not in _VARYING]
    return start["status"], kept, b"".join(m.get("body", b"") for m in sent[1:])


@pytest.fixture
async def app() -> AsyncIterator[Any]:
    """The gateway on the memory backbone, its lifespan started (no sockets)."""
    application = create_app(load_config(environ={}, overrides={"api_key": ADMIN_KEY}))
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    lifespan = asyncio.create_task(application(scope, inbox.get, outbox.put))
    assert (await outbox.get())["type"] == "lifespan.startup.complete"
    yield application
    await inbox.put({"type": "lifespan.shutdown"})
    assert (await outbox.get())["type"] == "lifespan.shutdown.complete"
    await lifespan


async def test_quick_call_answers_as_a_get_of_its_task(app: Any) -> None:
    """A finished call's status, headers and bytes are those GET (Starlette's path) sends."""
    body = json.dumps({"requests": [{"text": "hello"}]}).encode()
    status, headers, answer = await _call(app, "POST", ECHO, body)
    task_id = json.loads(answer)["task_id"]
    got_status, got_headers, got = await _call(app, "GET", f"/api/v1/tasks/{task_id}")
    assert (status, headers, answer) == (got_status, got_headers, got)
    assert status == 200
    assert (b"x-ratelimit-limit", b"600") in headers


async def test_running_call_answers_as_a_json_response_with_location(app: Any) -> None:
    """A 202 carries the very headers and bytes of a JSONResponse with its Location."""
    body = json.dumps({"requests": [{"n": 1, "interval": 0.2}]}).encode()
    prefer = [(b"authorization", b"Bearer " + ADMIN_KEY.encode()), (b"prefer", b"respond-async")]
    status, headers, answer = await _call(app, "POST", COUNTDOWN, body, prefer)
    task = validate(json.loads(answer), Task)
    expected = JSONResponse(task, status_code=202, headers={"Location": task.links.self})
    assert (status, headers[:3], answer) == (202, expected.raw_headers, expected.body)


async def test_first_of_repeated_headers_counts(app: Any) -> None:
    """Of two Authorization headers the first is read, as Starlette's ``Headers.get`` does."""
    body = json.dumps({"requests": [{"text": "x"}]}).encode()
    valid = (b"authorization", b"Bearer " + ADMIN_KEY.encode())
    invalid = (b"authorization", b"Bearer sk_not_a_key")
    assert (await _call(app, "POST", ECHO, body, [valid, invalid]))[0] == 200
    assert (await _call(app, "POST", ECHO, body, [invalid, valid]))[0] == 401


def _receiver(messages: list[Message]) -> Any:
    queue = list(messages)

    async def receive() -> Message:
        return queue.pop(0)

    return receive


async def _chunks_of(messages: list[Message]) -> list[bytes]:
    return [chunk async for chunk in receive_chunks(_receiver(messages))]


async def _stream_of(messages: list[Message]) -> list[bytes]:
    scope = _scope("POST", ECHO, [])
    return [chunk async for chunk in Request(scope, _receiver(messages)).stream()]


async def test_receive_chunks_gives_what_request_stream_gives() -> None:
    """The body read from ``receive`` is ``Request.stream``'s, chunk for chunk (its closing
    empty chunk aside)."""
    messages: list[Message] = [
        {"type": "http.request", "body": b'{"a"', "more_body": True},
        {"type": "http.request", "body": b"", "more_body": True},
        {"type": "http.request", "body": b":1}", "more_body": False},
    ]
    from_request = [chunk for chunk in await _stream_of(messages) if chunk]
    assert await _chunks_of(messages) == from_request == [b'{"a"', b":1}"]


async def test_receive_chunks_raises_client_disconnect_as_request_stream_does() -> None:
    """A client gone mid-body is ``ClientDisconnect``, as ``Request.stream`` raises it."""
    messages: list[Message] = [
        {"type": "http.request", "body": b"{", "more_body": True},
        {"type": "http.disconnect"},
    ]
    with pytest.raises(ClientDisconnect):
        await _chunks_of(messages)
    with pytest.raises(ClientDisconnect):
        await _stream_of(messages)


async def test_a_500_carries_the_rate_limit_headers(
    app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last-resort 500 is a response like any other: while a limit is on, it carries the
    X-RateLimit-* headers (API.md), the rate limit being counted in the same layer."""

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("broken on purpose")

    monkeypatch.setattr(app.state.skillwire.tasks, "list", broken)
    status, headers, _ = await _call(app, "GET", "/api/v1/tasks")
    assert status == 500
    assert {k for k, _ in headers} >= {b"x-ratelimit-limit", b"x-ratelimit-reset"}
