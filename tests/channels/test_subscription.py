"""Subscribe-then-replay over the memory backbone: exactly once, in order, whatever the timing."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skillwire.protocol import EventType, format_time, lifecycle
from skillwire.server.backbone import MemoryBackbone
from skillwire.server.channels import Subscription
from skillwire.server.channels._outbox import Outbox

TASK = "tsk_property"


class YieldingBackbone(MemoryBackbone):
    """Suspends around every read, as a networked backbone does, so appends interleave."""

    def __init__(self, yields: list[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._yields = yields
        self._calls = 0

    async def _pause(self) -> None:
        self._calls += 1
        for _ in range(self._yields[self._calls % len(self._yields)]):
            await asyncio.sleep(0)

    async def read_events(self, task_id: str, after: int, limit: int) -> Any:
        await self._pause()
        page = await super().read_events(task_id, after, min(limit, 3))
        await self._pause()
        return page

    async def get_task(self, task_id: str) -> Any:
        await self._pause()
        return await super().get_task(task_id)

    async def listen(self, task_id: str, listener: Any) -> Any:
        await self._pause()
        undo = await super().listen(task_id, listener)
        await self._pause()
        return undo


def _script(outputs: list[int]) -> list[tuple[EventType, int]]:
    steps: list[tuple[EventType, int]] = []
    for index, count in enumerate(outputs):
        steps.append((EventType.REQUEST_STARTED, index))
        steps.extend((EventType.REQUEST_OUTPUT, index) for _ in range(count))
        steps.append((EventType.REQUEST_COMPLETED, index))
    return steps


async def _scenario(
    outputs: list[int], plan: list[tuple[int, int, bool]], max_events: int, pauses: list[int]
) -> None:
    backbone = YieldingBackbone(pauses, max_events=max_events)
    task, first = lifecycle.new_task(TASK, "demo", "echo", len(outputs), {}, format_time(0))
    await backbone.create_task(task, first, owner="u", webhook_url=None, work=[])
    steps = _script(outputs)
    received: list[tuple[int, Outbox, list[bytes]]] = []
    runners: list[asyncio.Task[None]] = []

    async def follow(after: int, snapshot: bool) -> None:
        outbox = Outbox(100_000)
        frames: list[bytes] = []
        received.append((after, outbox, frames))
        sub = Subscription(
            backbone,
            TASK,
            after,
            outbox=outbox,
            frame=lambda e: b"%d %s" % (e.seq, e.type.encode()),
            snapshot=snapshot,
            buffer_limit=100_000,
        )
        await sub.run()
        frames.extend(await outbox.take(0))

    by_step: dict[int, list[tuple[int, bool]]] = {}
    for at, after, snapshot in plan:
        by_step.setdefault(at % (len(steps) + 1), []).append((after, snapshot))
    for i, (type_, index) in enumerate([*steps, (None, None)]):
        for after, snapshot in by_step.get(i, []):
            last = task.last_seq
            runners.append(asyncio.create_task(follow(min(after, last + 1), snapshot)))
        for _ in range(pauses[i % len(pauses)]):
            await asyncio.sleep(0)
        if type_ is not None:
            data: Any = {"i": i} if type_ is EventType.REQUEST_OUTPUT else {}
            await backbone.append(TASK, type_, index, data)  # type: ignore[arg-type]
    await asyncio.wait_for(asyncio.gather(*runners), 5)
    last = task.last_seq
    for after, _, frames in received:
        got = [(int(f.split(b" ")[0]), f.split(b" ")[1].decode()) for f in frames]
        expected_next = after + 1
        for position, (seq, type_) in enumerate(got):
            if type_ == "task.snapshot":
                # a snapshot stands for everything up to its seq (asked for first, or the log
                # no longer had the events after the last one sent)
                assert position == 0 or seq >= expected_next - 1, (after, got)
            else:
                assert seq == expected_next, (after, got)
            expected_next = seq + 1
        assert expected_next == last + 1 or (not got and after >= last), (after, got)
        if got:
            assert got[-1][1] in ("task.completed", "task.snapshot"), (after, got)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    outputs=st.lists(st.integers(0, 12), min_size=1, max_size=4),
    plan=st.lists(
        st.tuples(st.integers(0, 60), st.integers(0, 60), st.booleans()), min_size=1, max_size=6
    ),
    max_events=st.sampled_from([4, 8, 10_000]),
    pauses=st.lists(st.integers(0, 3), min_size=1, max_size=8),
)
def test_random_interleavings_deliver_each_event_once_in_order(
    outputs: list[int], plan: list[tuple[int, int, bool]], max_events: int, pauses: list[int]
) -> None:
    """Subscribers joining at any point, with any `after`, get seq after+1..last exactly once."""
    asyncio.run(_scenario(outputs, plan, max_events, pauses))


async def test_subscriber_older_than_the_log_gets_a_snapshot_first() -> None:
    """When `after` is older than the oldest kept event, a task.snapshot carrying seq N comes first."""
    backbone = MemoryBackbone(max_events=4)
    task, first = lifecycle.new_task(TASK, "demo", "echo", 1, {}, format_time(0))
    await backbone.create_task(task, first, owner="u", webhook_url=None, work=[])
    await backbone.append(TASK, EventType.REQUEST_STARTED, 0, {})
    for i in range(20):
        await backbone.append(TASK, EventType.REQUEST_OUTPUT, 0, {"i": i})
    outbox = Outbox(1000)
    sub = Subscription(backbone, TASK, 0, outbox=outbox, frame=lambda e: e.json)
    runner = asyncio.create_task(sub.run())
    await asyncio.sleep(0.05)
    await backbone.append(TASK, EventType.REQUEST_COMPLETED, 0, {})
    await asyncio.wait_for(runner, 5)
    import json

    events = [json.loads(f) for f in await outbox.take(0)]
    assert events[0]["type"] == "task.snapshot"
    assert events[0]["seq"] == 23
    assert len(events[0]["data"]["requests"][0]["output"]) == 20
    assert [e["seq"] for e in events[1:]] == [24, 25]
