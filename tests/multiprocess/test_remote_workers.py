"""Remote workers in the production topology: gateways without in-process workers, and
``skillwire worker`` processes, on one Redis."""

from __future__ import annotations

import asyncio

from skillwire.client import WorkContext, Worker
from tests.conftest import ADMIN_KEY, scaled

from .conftest import Topology


async def test_work_claimed_by_a_worker_process_reaches_a_remote_worker(
    topology: Topology,
) -> None:
    """A call on gateway 1 is claimed by a `skillwire worker` process, which forwards it to
    the remote worker connected to gateway 0."""
    worker = Worker(topology.gateways[0].url, ADMIN_KEY, name="mp", app="remote")

    @worker.skill(mode="long")
    async def shout(ctx: WorkContext, text: str) -> dict[str, str]:
        await ctx.progress(0.5)
        return {"type": "text", "text": text.upper()}

    job = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(worker.ready.wait(), scaled(10))
        with topology.client(1) as client:
            response = await asyncio.to_thread(
                client.post,
                "/api/v1/apps/remote/shout",
                json={"requests": [{"text": "a"}, {"text": "b"}]},
                headers={"Prefer": "wait=20"},
            )
    finally:
        await worker.stop()
        await asyncio.wait_for(job, scaled(5))
    task = response.json()
    assert task["status"] == "completed", task
    assert task["previews"] == [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}]
