"""The backbone contract: the same event sequences leave the same logs and tasks on both.

The memory backbone runs ``skillwire.protocol.lifecycle`` in Python; the Redis backbone runs
Lua scripts whose rule tables are generated from it. Hypothesis draws event sequences (mostly
legal, some illegal, some batched, some cancels), pushes each through both backbones, and
compares every answer, then the whole log and the stored task, modulo times.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skillwire.protocol import (
    Conflict,
    EncodedEvent,
    EventType,
    IllegalTransition,
    RequestStatus,
    SkillwireError,
    encode,
    format_time,
    lifecycle,
)
from skillwire.server.backbone import Backbone, MemoryBackbone
from skillwire.server.backbone.redis import RedisBackbone
from skillwire.server.backbone.redis import _scripts as scripts
from tests.conftest import RedisServer, scaled

T = TypeVar("T")
DB = 3  # a database of its own: module-wide servers of other tests use 1 and 2
TIME_FIELDS = frozenset({"time", "created_at", "updated_at", "finished_at", "timestamp"})
FAILURE = {"error": {"code": "SKILL_ERROR", "message": "boom", "details": {"why": "test"}}}
# How often a legal step draws each type (1 unless said): running requests mostly report, so
# that a request's state gets rich before it ends. New event types get drawn too.
WEIGHTS = {
    EventType.REQUEST_PROGRESS: 4,
    EventType.REQUEST_OUTPUT: 4,
    EventType.REQUEST_DELTA: 4,
    EventType.REQUEST_STARTED: 2,
}
# The types legal after each request status, read from the protocol's table.
LEGAL_AFTER = {
    status: [
        t
        for t, (allowed, _) in lifecycle.REQUEST_TRANSITIONS.items()
        if status in allowed
        for _ in range(WEIGHTS.get(t, 1))
    ]
    for status in RequestStatus
}
PAYLOADS: dict[EventType, st.SearchStrategy[Any]] = {
    EventType.REQUEST_QUEUED: st.just({"reason": "provider_rate_limit", "retry_at": "T"}),
    EventType.REQUEST_STARTED: st.just({}),
    # Without a fraction, progress keeps the request's last one.
    EventType.REQUEST_PROGRESS: st.one_of(
        st.floats(0, 1).map(lambda p: {"progress": p, "message": "m"}),
        st.sampled_from([0.25, 0.5]).map(lambda p: {"progress": p}),
        st.just({"message": "no fraction"}),
    ),
    EventType.REQUEST_OUTPUT: st.one_of(
        st.integers(0, 1000).map(lambda i: {"type": "tick", "i": i}),
        st.text(max_size=8).map(lambda s: {"type": "text", "text": s}),
        st.floats(allow_nan=False, allow_infinity=False),
        st.none(),
    ),
    EventType.REQUEST_COMPLETED: st.one_of(
        st.just({}),
        st.just({"finish_reason": "stop", "usage": {"total_tokens": 3}}),
        st.just(["not", "an", "object"]),
    ),
    EventType.REQUEST_FAILED: st.just(FAILURE),
    # Mostly to outputs that exist (text fields, a tick's int, non-objects), some malformed.
    EventType.REQUEST_DELTA: st.one_of(
        st.builds(
            lambda n, field, text: {"output": n, "field": field, "append": text},
            st.integers(0, 4),
            st.sampled_from(["text", "text", "i", "type", "missing"]),
            st.text(max_size=6),
        ),
        st.just({"output": -1, "field": "text", "append": "x"}),
        st.just({"output": 0, "field": "text"}),
        st.just("not an object"),
    ),
}
# Anything a caller could push, legal or not: every event type (task.* ones are never pushed).
ANY_TYPE = st.sampled_from(list(EventType))


def payload(type_: EventType) -> st.SearchStrategy[Any]:
    return PAYLOADS.get(type_, st.just({}))


def timeless(value: Any) -> Any:
    """``value`` with every time replaced by a marker (the two backbones read their own clock)."""
    if isinstance(value, dict):
        return {
            k: ("<time>" if k in TIME_FIELDS and v is not None else timeless(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [timeless(v) for v in value]
    return value


def seen(events: list[EncodedEvent]) -> list[tuple[int, str, bool, Any]]:
    return [(e.seq, e.type, e.terminal, timeless(json.loads(e.json))) for e in events]


@dataclass
class Pair:
    """A memory and a Redis backbone, driven on one event loop of this test module."""

    loop: asyncio.AbstractEventLoop
    memory: MemoryBackbone
    redis: RedisBackbone

    @property
    def both(self) -> tuple[Backbone, Backbone]:
        return self.memory, self.redis

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(asyncio.wait_for(coro, scaled(10)))


@pytest.fixture(scope="module")
def pair(redis_server: RedisServer) -> Iterator[Pair]:
    """Both backbones, started once for every example of this module."""
    yield from _pair(redis_server, {})


@pytest.fixture(scope="module")
def tight_pair(redis_server: RedisServer) -> Iterator[Pair]:
    """Both backbones with tiny output bounds, so that outputs leave the Task all the time."""
    yield from _pair(redis_server, {"max_outputs": 2, "max_output_bytes": 60})


def _pair(redis_server: RedisServer, bounds: dict[str, int]) -> Iterator[Pair]:
    url = f"redis://127.0.0.1:{redis_server.port}/{DB}"
    loop = asyncio.new_event_loop()
    pair = Pair(loop, MemoryBackbone(**bounds), RedisBackbone(url, **bounds))

    async def start() -> None:
        client = aioredis.Redis.from_url(url)
        await client.flushdb()
        await client.aclose()
        for backbone in pair.both:
            await backbone.start()

    async def close() -> None:
        for backbone in pair.both:
            await backbone.close()

    pair.run(start())
    yield pair
    pair.run(close())
    loop.close()


async def outcome(call: Coroutine[Any, Any, Any]) -> Any:
    """What one backbone answered: its events (or cancelled task), or the error it raised."""
    try:
        result = await call
    except SkillwireError as exc:
        return ("error", type(exc).__name__, exc.message)
    if isinstance(result, tuple):  # append_batch: (applied, events)
        return ("batch", result[0], seen(result[1]))
    if isinstance(result, list):
        return ("events", seen(result))
    return ("task", timeless(json.loads(encode(result))))


async def both(pair: Pair, name: str, *args: Any) -> Any:
    """Call backbone method ``name`` on both backbones; they must answer alike."""
    memory, redis = [await outcome(getattr(b, name)(*args)) for b in pair.both]
    assert memory == redis, f"{name}{args}"
    return memory


async def task_of(backbone: Backbone, task_id: str) -> Any:
    found = await backbone.get_task(task_id)
    assert found is not None
    return timeless(json.loads(encode(found.task)))


async def stored(backbone: Backbone, task_id: str) -> Any:
    found = await backbone.get_task(task_id)
    log = await backbone.read_events(task_id, 0, 100_000)
    assert found is not None
    assert log is not None
    return (
        timeless(json.loads(encode(found.task))),
        found.owner,
        found.webhook_url,
        seen(log.events),
        (log.first_seq, log.last_seq, log.finished),
    )


async def create(pair: Pair, task_id: str, n_requests: int) -> None:
    """The same new task on both backbones (each keeps its own copy)."""
    for backbone in pair.both:
        task, event = lifecycle.new_task(
            task_id, "demo", "echo", n_requests, {"k": "v"}, format_time(0)
        )
        await backbone.create_task(task, event, owner="u", webhook_url=None, work=[])


_examples = iter(range(1_000_000_000))


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), n_requests=st.integers(1, 3), steps=st.integers(0, 30))
def test_same_events_leave_the_same_log_and_task_on_both_backbones(
    pair: Pair, data: st.DataObject, n_requests: int, steps: int
) -> None:
    """Random event sequences (legal, illegal, batched, cancels) applied to the memory and the
    Redis backbone get the same answers and leave identical logs and Tasks, modulo times."""
    random_steps(pair, data, n_requests, steps)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), n_requests=st.integers(1, 3), steps=st.integers(0, 25))
def test_outputs_leave_the_task_alike_on_both_backbones(
    tight_pair: Pair, data: st.DataObject, n_requests: int, steps: int
) -> None:
    """With max_outputs 2 and max_output_bytes 60, random outputs and deltas drop the same
    outputs on both backbones: the same outputs_dropped, outputs and accumulated text."""
    random_steps(tight_pair, data, n_requests, steps)


def random_steps(pair: Pair, data: st.DataObject, n_requests: int, steps: int) -> None:
    """Push ``steps`` random steps through both backbones, comparing after each."""
    task_id = f"tsk_contract{next(_examples)}"

    async def scenario() -> None:
        await create(pair, task_id, n_requests)
        for _ in range(steps):
            current = await pair.memory.get_task(task_id)
            assert current is not None
            requests = current.task.requests
            open_ = [r.index for r in requests if LEGAL_AFTER[r.status]]
            finished = current.task.status in lifecycle.TERMINAL_TASK_STATUSES
            kind = data.draw(
                st.sampled_from(["legal"] * 12 + ["any", "batch", "batch", "cancel"]),
                label="kind",
            )
            if finished or kind == "any":  # after the end, one late event, then stop
                type_ = data.draw(ANY_TYPE, label="type")
                index = data.draw(st.integers(-1, n_requests), label="index")
                await both(pair, "append", task_id, type_, index, data.draw(payload(type_)))
            elif kind == "cancel":
                await both(pair, "cancel", task_id)
            else:
                index = data.draw(st.sampled_from(open_), label="index")
                legal = LEGAL_AFTER[requests[index].status]
                types = data.draw(
                    st.lists(
                        st.sampled_from(legal), min_size=1, max_size=4 if kind == "batch" else 1
                    ),
                    label="types",
                )
                entries = [(t, data.draw(payload(t), label="data")) for t in types]
                if kind == "batch":
                    await both(pair, "append_batch", task_id, index, entries)
                else:
                    await both(pair, "append", task_id, entries[0][0], index, entries[0][1])
            # The task after every step, not only at the end: a later event may hide a
            # difference (the events each step appended were compared by both()).
            memory, redis = [await task_of(b, task_id) for b in pair.both]
            assert memory == redis
            if finished:
                break
        memory, redis = [await stored(b, task_id) for b in pair.both]
        assert memory == redis

    pair.run(scenario())


def test_cancelling_twice_is_a_conflict_on_both(pair: Pair) -> None:
    """A second cancel answers Conflict with the same message on both backbones."""
    task_id = "tsk_contract_cancel"

    async def scenario() -> None:
        await create(pair, task_id, 1)
        first = await both(pair, "cancel", task_id)
        assert first[0] == "task"
        assert await both(pair, "cancel", task_id) == (
            "error",
            Conflict.__name__,
            f"task {task_id} is already cancelled",
        )

    pair.run(scenario())


def test_illegal_transitions_are_refused_alike(pair: Pair) -> None:
    """An illegal transition raises IllegalTransition with the same message on both."""
    task_id = "tsk_contract_illegal"

    async def scenario() -> None:
        await create(pair, task_id, 1)
        answer = await both(pair, "append", task_id, EventType.REQUEST_OUTPUT, 0, {})
        assert answer == (
            "error",
            IllegalTransition.__name__,
            "request.output cannot follow request status queued",
        )

    pair.run(scenario())


def test_progress_without_a_fraction_keeps_the_last_one_on_both(pair: Pair) -> None:
    """request.progress without ``progress`` keeps the request's fraction (Redis reset it to 0)."""
    task_id = "tsk_contract_progress"

    async def scenario() -> None:
        await create(pair, task_id, 1)
        await both(pair, "append", task_id, EventType.REQUEST_STARTED, 0, {})
        await both(pair, "append", task_id, EventType.REQUEST_PROGRESS, 0, {"progress": 0.5})
        await both(pair, "append", task_id, EventType.REQUEST_PROGRESS, 0, {"message": "m"})
        for backbone in pair.both:
            found = await backbone.get_task(task_id)
            assert found is not None
            assert found.task.requests[0].progress == 0.5, backbone.name

    pair.run(scenario())


@pytest.mark.parametrize("index", [0, 5])
def test_a_task_event_on_a_finished_task_is_illegal_on_both(pair: Pair, index: int) -> None:
    """Pushing a task.* type, even to a finished task, is an IllegalTransition on both (Redis
    used to refuse it quietly once the task had finished)."""
    task_id = f"tsk_contract_finished{index}"

    async def scenario() -> None:
        await create(pair, task_id, 1)
        await both(pair, "cancel", task_id)
        answer = await both(pair, "append", task_id, EventType.TASK_STARTED, index, {})
        assert answer == (
            "error",
            IllegalTransition.__name__,
            "task.started is not a request event",
        )

    pair.run(scenario())


def test_lua_tables_are_the_protocol_tables(redis_server: RedisServer, pair: Pair) -> None:
    """The Lua rule tables, evaluated by Redis, hold exactly the protocol's lifecycle tables."""
    dump = (
        scripts.LIFECYCLE
        + """
local rules = {}
for etype, rule in pairs(RULES) do
  local from = {}
  for status in pairs(rule[1]) do from[#from + 1] = status end
  table.sort(from)
  rules[etype] = {from, rule[2]}
end
local function keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end
return cjson.encode({rules = rules, task = keys(TERMINAL_TASK), req = keys(TERMINAL_REQ),
  events = TERMINAL_EVENT})
"""
    )

    async def evaluate() -> Any:
        client = aioredis.Redis.from_url(redis_server.url)
        try:
            return json.loads(await client.eval(dump, 0))
        finally:
            await client.aclose()

    tables = pair.run(evaluate())
    assert tables["rules"] == {
        t.value: [sorted(allowed), to.value]
        for t, (allowed, to) in lifecycle.REQUEST_TRANSITIONS.items()
    }
    assert tables["task"] == sorted(lifecycle.TERMINAL_TASK_STATUSES)
    assert tables["req"] == sorted(lifecycle.TERMINAL_REQUEST_STATUSES)
    assert tables["events"] == {s.value: t.value for s, t in lifecycle.TASK_TERMINAL_EVENTS.items()}
