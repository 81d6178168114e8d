"""Streamed outputs end to end: the skill API (``ctx.stream``, ``ctx.append``,
``ctx.set_result``), the Task's accumulated value and its bounds, on both backbones."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from skillwire.protocol import EventType, decode_event, format_time, lifecycle
from skillwire.server import App, Context
from skillwire.server.backbone import MemoryBackbone
from tests.conftest import RunningServer, scaled, wait_until
from tests.server.conftest import events_of, finished
from tests.webhooks.helpers import Receiver, hooks

WORDS = [f"w{i} " for i in range(50)]


def streaming_app() -> App:
    app = App("streams")

    @app.skill(mode="long")
    async def answer(ctx: Context, words: int = 50) -> None:
        """One streamed text, a tool call grown afterwards, and a result."""
        async with ctx.stream({"type": "text", "text": ""}) as out:
            for word in WORDS[:words]:
                await out.append(word)
        assert out.index == 0
        call = await ctx.output({"type": "tool_call", "name": "f", "arguments": ""})
        await ctx.append(call, "arguments", '{"a"')
        await ctx.append(call, "arguments", ": 1}")
        await ctx.append(out.index, "text", "!")
        ctx.set_result({"finish_reason": "stop", "usage": {"total_tokens": words}})

    @app.skill(mode="long")
    async def many(ctx: Context, n: int, size: int = 0) -> None:
        """``n`` small outputs (each ``size`` bytes of padding)."""
        pad = "x" * size
        for i in range(n):
            await ctx.output({"i": i, "pad": pad})

    @app.skill(mode="long")
    async def hold(ctx: Context, n: int) -> None:
        """``n`` outputs, then wait to be cancelled."""
        for i in range(n):
            await ctx.output({"i": i})
        await asyncio.sleep(scaled(60))

    @app.skill(mode="long")
    async def misuse(ctx: Context, how: str) -> None:
        """Mistakes a skill author can make with the streaming API."""
        if how == "not-a-string":
            ctx.stream({"type": "tick", "i": 1})
        elif how == "unknown-output":
            await ctx.append(3, "text", "x")
        elif how == "bad-field":
            n = await ctx.output({"type": "tick", "i": 1})
            await ctx.append(n, "i", "x")

    return app


def call(server: RunningServer, skill: str, requests: list[dict[str, Any]]) -> dict[str, Any]:
    with server.client() as client:
        response = client.post(
            f"/api/v1/apps/streams/{skill}",
            json={"requests": requests},
            headers={"Prefer": "respond-async"},
        )
        assert response.status_code == 202, response.text
        return finished(client, response.json()["task_id"], wait=60)


@pytest.fixture
def streams_server(server_factory: Callable[..., RunningServer]) -> RunningServer:
    return server_factory({}, apps=[streaming_app()])


def test_streamed_output_accumulates_in_the_task(streams_server: RunningServer) -> None:
    """The Task holds each streamed output's whole text and the request's result."""
    task = call(streams_server, "answer", [{}, {"words": 3}])
    assert task["status"] == "completed"
    first, second = task["requests"]
    assert first["output"] == [
        {"type": "text", "text": "".join(WORDS) + "!"},
        {"type": "tool_call", "name": "f", "arguments": '{"a": 1}'},
    ]
    assert second["output"][0]["text"] == "w0 w1 w2 !"
    assert first["result"] == {"finish_reason": "stop", "usage": {"total_tokens": 50}}
    assert (first["outputs_dropped"], second["outputs_dropped"]) == (0, 0)
    assert task["previews"] == first["output"] + second["output"]


def test_deltas_in_the_log_rebuild_the_outputs(streams_server: RunningServer) -> None:
    """Replaying the log's outputs and deltas gives the Task's outputs; request.completed
    carries the result."""
    task = call(streams_server, "answer", [{}])
    events = events_of(streams_server, task["task_id"])
    outputs: list[dict[str, Any]] = []
    for event in events:
        if event["type"] == "request.output":
            outputs.append(event["data"])
        elif event["type"] == "request.delta":
            delta = event["data"]
            assert set(delta) == {"output", "field", "append"}
            target = outputs[delta["output"]]
            target[delta["field"]] += delta["append"]
    assert outputs == task["requests"][0]["output"]
    completed = next(e for e in events if e["type"] == "request.completed")
    assert completed["data"] == {"finish_reason": "stop", "usage": {"total_tokens": 50}}


def test_appends_written_behind_together_are_one_event(
    streams_server: RunningServer, backbone: str
) -> None:
    """On a backbone that writes behind (redis), 50 appends made in one step are one delta;
    on memory each append is its own event."""
    task = call(streams_server, "answer", [{}])
    deltas = [
        e["data"]
        for e in events_of(streams_server, task["task_id"])
        if e["type"] == "request.delta" and e["data"]["field"] == "text"
    ]
    if backbone == "redis":
        assert deltas[0] == {"output": 0, "field": "text", "append": "".join(WORDS)}
        assert len(deltas) == 2  # and the "!" appended after the tool call's deltas
    else:
        assert len(deltas) == 51
    assert "".join(d["append"] for d in deltas) == "".join(WORDS) + "!"


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("not-a-string", "unexpected error"),
        ("unknown-output", "unexpected error"),
        ("bad-field", "field `i` of output 0 is not a string"),
    ],
)
def test_misusing_the_streaming_api_fails_the_request(
    streams_server: RunningServer, how: str, message: str
) -> None:
    """ctx.stream on a non-string field, ctx.append to an output never emitted or to a field
    that is not a string: the request fails, the task does not hang."""
    task = call(streams_server, "misuse", [{"how": how}])
    assert task["status"] == "failed"
    assert task["requests"][0]["error"]["code"] == "INTERNAL_ERROR"
    assert message in task["requests"][0]["error"]["message"]


def test_100000_outputs_leave_a_bounded_task(
    server_factory: Callable[..., RunningServer],
) -> None:
    """100,000 outputs: the Task, GET and the terminal event hold the last max_outputs of them
    and count the rest in outputs_dropped."""
    server = server_factory({"task": {"max_outputs": 1_000}}, apps=[streaming_app()])
    task = call(server, "many", [{"n": 100_000}])
    request = task["requests"][0]
    assert request["outputs_dropped"] == 99_000
    assert len(request["output"]) == 1_000
    assert request["output"][0] == {"i": 99_000, "pad": ""}
    assert request["output"][-1] == {"i": 99_999, "pad": ""}
    terminal = events_of(server, task["task_id"])[-1]
    assert terminal["type"] == "task.completed"
    assert terminal["data"]["requests"][0]["outputs_dropped"] == 99_000
    assert len(terminal["data"]["previews"]) == 1_000
    assert held_in_store(server, task["task_id"]) == (1_000, 1_000)


def held_in_store(server: RunningServer, task_id: str) -> tuple[int, int]:
    """What the backbone itself keeps for request 0: (outputs, entries beside them). On memory
    the second is the log's length capped to 1,000; on Redis the offsets list."""
    backbone = server.runtime.backbone
    if backbone.name == "memory":
        record = backbone._records[task_id]
        assert len(record.log) <= 12_500  # max_events and a quarter, trimmed in chunks
        return len(record.task.requests[0].output), min(len(record.log), 1_000)
    import redis

    from skillwire.server.backbone.redis import _keys as keys

    client = redis.Redis.from_url(server.runtime.config.redis_url)
    try:
        assert client.xlen(keys.events(task_id)) <= 12_000  # the stream is capped near 10,000
        return client.llen(keys.outputs(task_id, 0)), client.llen(keys.output_meta(task_id, 0))
    finally:
        client.close()


def test_memory_log_stays_under_max_log_bytes(
    server_factory: Callable[..., RunningServer], backbone: str
) -> None:
    """On the memory backbone a log over max_log_bytes drops its oldest events (a reader
    from seq 0 then gets a snapshot first); Redis keeps max_events whatever their size."""
    if backbone != "memory":
        pytest.skip("max_log_bytes bounds the memory backbone's log")
    server = server_factory(
        {"max_log_bytes": 64 * 1024, "task": {"max_output_bytes": 16 * 1024}},
        apps=[streaming_app()],
    )
    task = call(server, "many", [{"n": 500, "size": 1_000}])
    record = server.runtime.backbone._records[task["task_id"]]
    assert record.log_bytes == sum(len(e.json) for e in record.log) <= 64 * 1024
    assert record.log[-1].seq == task["last_seq"]
    assert record.first_seq > 1
    with (
        server.client() as client,
        client.stream(
            "GET",
            f"/api/v1/tasks/{task['task_id']}/events",
            headers={"Accept": "application/x-ndjson"},
        ) as response,
    ):
        first = json.loads(next(response.iter_lines()))
    assert first["type"] == "task.snapshot"


def test_max_output_bytes_bounds_the_task(server_factory: Callable[..., RunningServer]) -> None:
    """Outputs of 1 KB: the Task keeps under max_output_bytes of them, oldest gone first."""
    server = server_factory({"task": {"max_output_bytes": 64 * 1024}}, apps=[streaming_app()])
    task = call(server, "many", [{"n": 2_000, "size": 1_000}])
    request = task["requests"][0]
    held = len(request["output"])
    sizes = [len(json.dumps(o, separators=(",", ":"))) for o in request["output"]]
    assert sum(sizes) <= 64 * 1024 < sum(sizes) + sizes[0]
    assert request["outputs_dropped"] == 2_000 - held
    assert request["output"][-1]["i"] == 1_999


# -- the Context API, against a memory backbone ----------------------------------------------
async def started_context(task_id: str) -> tuple[MemoryBackbone, Context]:
    backbone = MemoryBackbone()
    task, first = lifecycle.new_task(task_id, "streams", "answer", 1, {}, format_time(0))
    await backbone.create_task(task, first, owner="u", webhook_url=None, work=[])
    assert await backbone.append(task_id, EventType.REQUEST_STARTED, 0, {})
    return backbone, Context(backbone, task_id, 0, "streams", "answer", "u")


async def test_output_numbers_count_from_zero_and_stream_takes_the_next() -> None:
    """ctx.output returns 0, 1, ...; a streamed output takes the next number on entering the
    block, keeps it after the block, and grows the field named."""
    backbone, ctx = await started_context("tsk_numbers")
    assert await ctx.output("plain") == 0
    out = ctx.stream({"type": "message", "content": "a"}, field="content")
    assert out.index == -1
    with pytest.raises(RuntimeError):
        await out.append("x")
    async with out:
        assert out.index == 1
        await out.append("b")
    await out.append("c")  # still its output after the block
    assert await ctx.output({"type": "tick"}) == 2
    stored = await backbone.get_task("tsk_numbers")
    assert stored is not None
    assert stored.task.requests[0].output[1] == {"type": "message", "content": "abc"}


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda ctx: ctx.stream({"type": "tick", "i": 1}), TypeError),
        (lambda ctx: ctx.stream("text"), TypeError),
        (lambda ctx: ctx.set_result(["not", "an", "object"]), TypeError),
    ],
)
async def test_context_refuses_what_cannot_stream(call: Any, error: type[Exception]) -> None:
    """ctx.stream on an item without that string field, and set_result with a non-object,
    raise at once in the skill."""
    _, ctx = await started_context("tsk_refuse")
    with pytest.raises(error):
        call(ctx)


async def test_append_to_an_output_not_emitted_raises() -> None:
    """ctx.append to a number ctx.output never returned raises ValueError; a non-str text
    raises TypeError; nothing is appended."""
    backbone, ctx = await started_context("tsk_append")
    await ctx.output({"text": ""})
    with pytest.raises(ValueError, match="output 1"):
        await ctx.append(1, "text", "x")
    with pytest.raises(TypeError):
        await ctx.append(0, "text", 3)  # type: ignore[arg-type]
    log = await backbone.read_events("tsk_append", 0, 100)
    assert log is not None and all(e.type != "request.delta" for e in log.events)


async def test_a_streamed_outputs_append_checks_like_ctx_append() -> None:
    """out.append raises TypeError for a non-str text and ValueError once a rerun left its
    number unemitted, as ctx.append does; an empty text sends nothing; nothing else is
    appended."""
    backbone, ctx = await started_context("tsk_out_append")
    async with ctx.stream({"type": "text", "text": ""}) as out:
        await out.append("a")
        await out.append("")
        with pytest.raises(TypeError):
            await out.append(3)  # type: ignore[arg-type]
        ctx.rerun()
        with pytest.raises(ValueError, match="output 0"):
            await out.append("b")
    log = await backbone.read_events("tsk_out_append", 0, 100)
    assert log is not None
    deltas = [decode_event(e.json).data for e in log.events if e.type == "request.delta"]
    assert deltas == [{"output": 0, "field": "text", "append": "a"}]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on 127.0.0.1 (as in tests/webhooks)."""
    running = Receiver()
    running.start()
    yield running
    running.stop()


def test_webhook_payload_replay_and_cancel_answer_stay_bounded(
    server_factory: Callable[..., RunningServer], receiver: Receiver
) -> None:
    """With max_outputs 100 and 5,000 outputs: the webhook payload, an idempotent replay and
    the DELETE answer of a running task each hold 100 outputs and count the rest."""
    server = server_factory({"task": {"max_outputs": 100}, **hooks()}, apps=[streaming_app()])
    body = {"requests": [{"n": 5_000}], "webhook_url": receiver.url + "/hook"}
    with server.client() as client:
        first = client.post(
            "/api/v1/apps/streams/many", json=body, headers={"Idempotency-Key": "bounded-1"}
        )
        task_id = first.json()["task_id"]
        finished(client, task_id, wait=60)
        replay = client.post(
            "/api/v1/apps/streams/many", json=body, headers={"Idempotency-Key": "bounded-1"}
        )
        assert replay.status_code == 200, replay.text
        held = client.post("/api/v1/apps/streams/hold", json={"requests": [{"n": 5_000}]})
        held_id = held.json()["task_id"]
        wait_until(lambda: finished_outputs(client, held_id) >= 5_000, timeout=60, interval=0.1)
        cancelled = client.delete(f"/api/v1/tasks/{held_id}")
    receipt = receiver.wait(lambda seen: len(seen) >= 1, timeout=30)[0]
    for task in (receipt.json()["data"], replay.json(), cancelled.json()):
        request = task["requests"][0]
        assert (len(request["output"]), request["outputs_dropped"]) == (100, 4_900), task["status"]
        assert len(task["previews"]) == 100


def finished_outputs(client: Any, task_id: str) -> int:
    """Outputs a task has emitted so far (held and dropped)."""
    request = client.get(f"/api/v1/tasks/{task_id}").json()["requests"][0]
    return int(request["outputs_dropped"] + len(request["output"]))
