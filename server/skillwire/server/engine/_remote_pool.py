"""Claims remote skills' work, offered by any process, for the workers connected here.

Only on a backbone that shares remote work (Redis). One loop per process, not per worker:
it reads, in one blocking call, the queues of the skills this process has free slots for
(as many items as slots), and hands each claim to a pool that runs it on the workers here.
When a slot frees (or a worker joins) it also reads that skill's queue at once, without
blocking, so a busy skill's backlog moves as fast as its workers finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

from skillwire.protocol import BackboneUnavailable

from ..backbone import Backbone, Claim
from ._remote import RemoteSkills
from ._worker import WorkerPool

__all__ = ["RemotePool"]

BLOCK = 0.5  # seconds one blocking read waits: the loop then reads its skills' list again

log = logging.getLogger("skillwire.workers")


class RemotePool:
    def __init__(self, backbone: Backbone, remote: RemoteSkills, runner: WorkerPool) -> None:
        self._backbone = backbone
        self._remote = remote
        self._runner = runner
        self._wake = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        self._grabbing: dict[str, asyncio.Task[None]] = {}
        self._returning: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._remote.on_capacity = self._capacity
        await self._runner.start()
        self._loop = asyncio.create_task(self._claim_forever(), name="skillwire-remote-claims")

    async def stop(self, grace: float = 0.0) -> None:
        self._remote.on_capacity = None
        jobs = [j for j in (self._loop, *self._grabbing.values(), *self._returning) if j]
        for job in jobs:
            job.cancel()
        for job in jobs:
            with contextlib.suppress(asyncio.CancelledError):
                await job
        await self._runner.stop(grace=grace)

    def _capacity(self, key: str) -> None:
        self._wake.set()
        if key not in self._grabbing and self._loop is not None:
            self._grabbing[key] = asyncio.create_task(self._grab(key))

    async def _grab(self, key: str) -> None:
        """Claim at once (no wait) what a skill with free slots has waiting."""
        try:
            want = self._remote.capacity().get(key, 0)
            if want:
                self._run(await self._backbone.claim_remote(self._runner.consumer, {key: want}, 0))
        except BackboneUnavailable as exc:
            log.warning("cannot claim remote work: %s", exc.message)
        finally:
            self._grabbing.pop(key, None)

    def _run(self, claims: list[Claim]) -> None:
        room = self._remote.capacity()
        for claim in claims:
            if room.get(claim.queue, 0) > 0:
                room[claim.queue] -= 1
                self._runner.run_claim(claim)
            else:  # its slots filled (or its worker left) while the read was under way
                job = asyncio.create_task(self._give_back(claim))
                self._returning.add(job)
                job.add_done_callback(self._returning.discard)

    async def _give_back(self, claim: Claim) -> None:
        try:
            await self._backbone.requeue_remote(claim)
        except BackboneUnavailable as exc:  # not acked: it comes back once its lease lapses
            log.warning("cannot give back remote work: %s", exc.message)

    async def _claim_forever(self) -> None:
        backoff = 0.1
        while True:
            wants = self._remote.capacity()
            if not wants:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                claims = await self._backbone.claim_remote(self._runner.consumer, wants, BLOCK)
            except BackboneUnavailable as exc:
                log.warning("cannot claim remote work: %s", exc.message)
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.1
            self._run(claims)
