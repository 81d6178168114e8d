"""stream_text and TaskOutputs against a real server running demo/stream: exact text, resumes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from skillwire.client import AsyncClient, Backoff, Client, EventType, TaskOutputs, TransportName
from tests.client.conftest import client_options
from tests.client.helpers import TcpProxy
from tests.conftest import RunningServer, scaled, start_server

TEXT = " ".join(f"w{i:03d}·é" for i in range(120)) + " end."
FAST = {"text": TEXT, "words_per_second": 400}
EVERY = ["ws", "sse", "ndjson", "poll"]
STREAMING = ["ws", "sse", "ndjson"]


async def read_all(chunks: AsyncIterator[str], *, proxy: TcpProxy | None = None) -> list[str]:
    """Every chunk; with a proxy, every connection is cut after the 5th chunk, then again at
    the 40th or the first after it that came once the client had reconnected (on a busy
    machine chunks 5 to 40 may all sit in the client's buffer when the first cut comes)."""
    got: list[str] = []
    pending = [5, 40]
    accepted = 0  # the proxy's connections when we last cut
    async with asyncio.timeout(scaled(30)):
        async for chunk in chunks:
            got.append(chunk)
            reconnected = proxy is not None and proxy.accepted > accepted
            if proxy is not None and pending and len(got) >= pending[0] and reconnected:
                pending.pop(0)
                accepted = proxy.accepted
                proxy.cut()
    return got


@pytest.mark.parametrize("transport", EVERY)
async def test_stream_text_yields_the_text_on_every_transport(
    client: AsyncClient, transport: TransportName
) -> None:
    """The chunks join to the streamed text exactly; streaming transports yield it in pieces."""
    task = await client.call("demo", "stream", [FAST], wait=0)
    chunks = await read_all(client.stream_text(task.task_id, transport=transport))
    assert "".join(chunks) == TEXT
    if transport != "poll":
        assert len(chunks) > 10
    assert all(chunks)


async def test_stream_text_from_a_task_starts_at_that_task(client: AsyncClient) -> None:
    """Given the Task from call(wait=0), the text comes from it on, without a snapshot."""
    task = await client.call("demo", "stream", [FAST], wait=0)
    chunks = await read_all(client.stream_text(task, transport="ws"))
    assert "".join(chunks) == TEXT


async def test_stream_text_joining_late_gets_the_text_so_far_first(client: AsyncClient) -> None:
    """A reader that joins mid-answer gets the text so far as its first chunk, then the rest."""
    task = await client.call("demo", "stream", [{"text": TEXT, "words_per_second": 200}], wait=0)
    async with asyncio.timeout(scaled(10)):
        while "w030" not in (await client.task(task.task_id)).requests[0].output[0]["text"]:
            await asyncio.sleep(0.02)
    chunks = await read_all(client.stream_text(task.task_id, transport="sse"))
    assert "w030" in chunks[0]
    assert "".join(chunks) == TEXT


async def test_stream_text_of_a_finished_task(client: AsyncClient) -> None:
    """A finished task's text comes whole, from a snapshot or from the Task given."""
    task = await client.call("demo", "stream", [{"text": TEXT, "words_per_second": 1000}], wait=20)
    assert task.status == "completed"
    assert await read_all(client.stream_text(task.task_id)) == [TEXT]
    assert await read_all(client.stream_text(task)) == [TEXT]


@pytest.mark.parametrize("transport", STREAMING)
async def test_stream_text_loses_and_repeats_nothing_across_cuts(
    shared_server: RunningServer, transport: TransportName
) -> None:
    """Cutting every connection twice mid-answer: the chunks still join to the text exactly."""
    port = int(shared_server.url.rsplit(":", 1)[1])
    async with TcpProxy(port) as proxy, AsyncClient(proxy.url, **client_options()) as client:
        task = await client.call("demo", "stream", [FAST], wait=0)
        chunks = await read_all(client.stream_text(task.task_id, transport=transport), proxy=proxy)
    assert "".join(chunks) == TEXT
    assert proxy.accepted >= 3


def spy_on_events(client: AsyncClient) -> list[str]:
    """Record the type of every event ``client.events()`` yields from now on."""
    seen: list[str] = []
    original = client.events

    def events(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        async def spy() -> AsyncIterator[Any]:
            async for event in original(*args, **kwargs):
                seen.append(event.type)
                yield event

        return spy()

    client.events = events  # type: ignore[method-assign,assignment]
    return seen


@pytest.fixture(scope="module")
def short_log_server() -> Iterator[RunningServer]:
    """A server whose task logs keep only 10 events: a resume falls behind and gets a snapshot."""
    running = start_server({"heartbeat_interval": 0.5, "rate_limit": "0", "max_events": 10})
    yield running
    running.stop()


@pytest.mark.parametrize("transport", STREAMING)
async def test_stream_text_after_a_resume_past_the_log_yields_only_what_is_new(
    short_log_server: RunningServer, transport: TransportName
) -> None:
    """A reader away longer than the log keeps resumes from a snapshot: the rest of the text,
    nothing twice."""
    port = int(short_log_server.url.rsplit(":", 1)[1])
    # A reconnect 0.6 s after the cut: 60 words (events) go by meanwhile.
    slow = client_options(backoff=Backoff(initial=0.6, maximum=0.6, jitter=0.0))
    async with TcpProxy(port) as proxy, AsyncClient(proxy.url, **slow) as client:
        task = await client.call(
            "demo", "stream", [{"text": TEXT, "words_per_second": 100}], wait=0
        )
        seen = spy_on_events(client)
        follow = client.stream_text(task.task_id, transport=transport)
        chunks: list[str] = []
        async with asyncio.timeout(scaled(30)):
            async for chunk in follow:
                chunks.append(chunk)
                if len(chunks) == 3:
                    proxy.cut()
        followed = list(seen)
        events = [e async for e in client.events(task.task_id, after=0, transport=transport)]
    assert "".join(chunks) == TEXT
    assert events[0].type is EventType.TASK_SNAPSHOT  # the log no longer starts at seq 1
    assert followed.count(EventType.TASK_SNAPSHOT) == 2  # the first one, and the resume's
    assert followed.count(EventType.REQUEST_DELTA) < TEXT.count(" ")  # some were never seen


def test_sync_stream_text(shared_server: RunningServer) -> None:
    """Client.stream_text is the same as a blocking iterator."""
    with Client(shared_server.url, **client_options()) as client:
        task = client.call("demo", "stream", [FAST], wait=0)
        chunks = list(client.stream_text(task.task_id))
    assert "".join(chunks) == TEXT


async def test_task_outputs_from_real_events_equal_the_final_task(client: AsyncClient) -> None:
    """TaskOutputs fed a real task's events (two requests streaming) ends equal to the Task."""
    requests: list[dict[str, Any]] = [FAST, {"text": "short answer", "words_per_second": 50}]
    task = await client.call("demo", "stream", requests, wait=0)
    outputs = TaskOutputs()
    deltas = 0
    async with asyncio.timeout(scaled(30)):
        async for event in client.events(task.task_id, transport="ws"):
            outputs.apply(event)
            deltas += event.type is EventType.REQUEST_DELTA
            if event.type is EventType.REQUEST_COMPLETED and event.index == 1:
                assert outputs.text(1) == "short answer"
    final = await client.task(task.task_id)
    assert deltas > 10
    for request in final.requests:
        assert outputs.output(request.index) == request.output
    assert outputs.text(0) == TEXT
