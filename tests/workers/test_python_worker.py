"""The Python worker SDK (skillwire.client.Worker) serving skills through a real gateway."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from skillwire.client import Backoff, SkillwireError, Unauthorized, WorkContext, Worker
from skillwire.protocol import SkillError
from tests.conftest import RunningServer, scaled

from .helpers import WORKER_KEY, call, finished, task_when, worker_server

Factory = Callable[..., RunningServer]


@contextlib.asynccontextmanager
async def serving(worker: Worker) -> AsyncIterator[asyncio.Task[None]]:
    """Run the worker until the block ends; wait for its welcome first."""
    job = asyncio.create_task(worker.run())
    try:
        async with asyncio.timeout(scaled(10)):
            await worker.ready.wait()
        yield job
    finally:
        await worker.stop()
        job.cancel()
        with contextlib.suppress(asyncio.CancelledError, SkillwireError):
            await job


def text_worker(server: RunningServer, **kwargs: Any) -> Worker:
    worker = Worker(server.url, WORKER_KEY, name="py", app="text", **kwargs)

    @worker.skill(description="Upper-case a text")
    async def upper(text: str, times: int = 1) -> dict[str, str]:
        return {"type": "text", "text": text.upper() * times}

    @worker.skill(mode="long")
    async def spell(ctx: WorkContext, text: str) -> None:
        """Spell a text letter by letter."""
        await ctx.progress(0.1, "starting")
        async with ctx.stream({"type": "text", "text": ""}) as out:
            for letter in text:
                await out.append(letter)
        ctx.set_result({"letters": len(text)})

    @worker.skill(input_schema={"type": "object", "properties": {"why": {"type": "string"}}})
    async def refuse(raw: dict[str, Any], ctx: WorkContext) -> None:
        raise SkillError(raw.get("why", "no"), code="REFUSED", details={"attempt": ctx.attempt})

    return worker


async def test_a_python_worker_serves_its_skills(server_factory: Factory) -> None:
    """Schemas come from the types; returned values, streams, results and errors arrive."""
    server = worker_server(server_factory)
    async with serving(text_worker(server)):
        async with server.async_client() as client:
            skill = (await client.get("/api/v1/apps/text/upper")).json()
        assert skill["remote"] is True and skill["description"] == "Upper-case a text"
        assert skill["input_schema"]["required"] == ["text"]
        invalid = await call(server, "upper", [{"text": 3}], app="text")
        assert invalid.status_code == 422
        done = await call(
            server, "upper", [{"text": "ab", "times": 2}], app="text", prefer="wait=10"
        )
        assert done.status_code == 200, done.text
        assert done.json()["previews"] == [{"type": "text", "text": "ABAB"}]
        spelled = await call(server, "spell", [{"text": "héllo"}], app="text")
        task = await task_when(server, spelled.json()["task_id"], finished)
        assert task["requests"][0]["output"] == [{"type": "text", "text": "héllo"}]
        assert task["requests"][0]["result"] == {"letters": 5}
        refused = await call(server, "refuse", [{"why": "because"}], app="text", prefer="wait=10")
        error = refused.json()["requests"][0]["error"]
        assert error == {"code": "REFUSED", "message": "because", "details": {"attempt": 1}}


async def test_a_cancel_reaches_the_python_skill(server_factory: Factory) -> None:
    """Cancelling the task cancels the running skill in the worker within 1 s."""
    server = worker_server(server_factory)
    worker = Worker(server.url, WORKER_KEY, app="text")
    started, stopped = asyncio.Event(), asyncio.Event()

    @worker.skill(mode="long")
    async def wait(ctx: WorkContext, seconds: float) -> None:
        started.set()
        try:
            await asyncio.sleep(seconds)
        finally:
            stopped.set()

    async with serving(worker):
        response = await call(server, "wait", [{"seconds": 60}], app="text")
        await asyncio.wait_for(started.wait(), scaled(10))
        async with server.async_client() as client:
            await client.delete(f"/api/v1/tasks/{response.json()['task_id']}")
        await asyncio.wait_for(stopped.wait(), scaled(1.0))


async def test_the_python_worker_reconnects(server_factory: Factory) -> None:
    """A dropped connection is opened again and the worker serves on."""
    server = worker_server(server_factory)
    worker = text_worker(server, backoff=None)
    async with serving(worker):
        first = worker.worker_id
        worker.ready.clear()
        server.call_soon(lambda: [c.end(1012, "test") for c in list(server.runtime.connections)])
        await asyncio.wait_for(worker.ready.wait(), scaled(10))
        assert worker.worker_id != first
        done = await call(server, "upper", [{"text": "x"}], app="text", prefer="wait=10")
        assert done.json()["status"] == "completed"


async def test_a_bad_key_stops_the_worker(server_factory: Factory) -> None:
    """A key the gateway refuses makes run() raise Unauthorized instead of retrying."""
    server = worker_server(server_factory)
    worker = Worker(server.url, "sk_nope", app="text")
    with pytest.raises(Unauthorized):
        await asyncio.wait_for(worker.run(), scaled(10))


async def test_a_conflicting_declaration_is_reported(server_factory: Factory) -> None:
    """Two workers declaring one skill differently: the second learns CONFLICT for it."""
    server = worker_server(server_factory)
    first = text_worker(server)
    second = Worker(server.url, WORKER_KEY, app="text")

    @second.skill()
    async def upper(text: str, shout: bool) -> str:
        return text

    async with serving(first), serving(second):
        assert second.refused["text/upper"].code == "CONFLICT"


async def test_the_python_worker_reconnects_after_a_gateway_restart(
    server_factory: Factory,
) -> None:
    """The gateway stops, then starts again on its port: the worker, retrying with backoff
    while it is down, connects again and serves."""
    server = worker_server(server_factory)
    port = int(server.url.rsplit(":", 1)[1])
    worker = text_worker(server, backoff=Backoff(initial=0.05, maximum=0.3))
    async with serving(worker):
        first = worker.worker_id
        worker.ready.clear()
        await asyncio.to_thread(server.stop)
        assert not worker.ready.is_set()
        again = worker_server(server_factory, port=port)
        await asyncio.wait_for(worker.ready.wait(), scaled(10))
        assert worker.worker_id != first
        done = await call(again, "upper", [{"text": "x"}], app="text", prefer="wait=10")
        assert done.json()["status"] == "completed"
