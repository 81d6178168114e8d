"""``/v1/chat/completions`` and ``/v1/models`` driven by OpenAI's own Python SDK."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest

from tests.conftest import ADMIN_KEY, SCOPED_KEY, RunningServer, scaled, wait_until

from .conftest import llm_settings
from .upstream import FakeUpstream, Plan, ToolCall


@pytest.fixture(params=["memory"])
def backbone(request: pytest.FixtureRequest) -> str:
    """The front door is HTTP over the same tasks: one backbone here (llm/chat runs on both);
    tests whose streams a backbone could change say ``@every_backbone``."""
    name: str = request.param
    return name


every_backbone = pytest.mark.parametrize("backbone", ["memory", "redis"], indirect=True)


@pytest.fixture
def sdk(llm_server: RunningServer) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(
        base_url=f"{llm_server.url}/v1", api_key=ADMIN_KEY, max_retries=0, timeout=scaled(30)
    )
    yield client
    client.close()


def test_non_streaming_completion(sdk: openai.OpenAI, upstream: FakeUpstream) -> None:
    """A plain call answers a chat.completion the SDK parses, with text, reason and usage."""
    upstream.plan("alpha", Plan(pieces=["Hel", "lo"]))
    answer = sdk.chat.completions.create(
        model="fake/alpha", messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.object == "chat.completion"
    assert answer.model == "fake/alpha"
    assert answer.choices[0].message.content == "Hello"
    assert answer.choices[0].message.role == "assistant"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None and answer.usage.total_tokens == 12
    assert upstream.requests[-1].body["model"] == "alpha"


def test_task_id_header_on_every_answer(sdk: openai.OpenAI) -> None:
    """Skillwire-Task-Id comes back on plain and streamed answers."""
    raw = sdk.chat.completions.with_raw_response.create(
        model="fake/alpha", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["skillwire-task-id"].startswith("tsk_")
    with sdk.chat.completions.with_streaming_response.create(
        model="fake/alpha", messages=[{"role": "user", "content": "hi"}], stream=True
    ) as streamed:
        assert streamed.headers["skillwire-task-id"].startswith("tsk_")


def test_streaming_chunks_and_usage(sdk: openai.OpenAI, upstream: FakeUpstream) -> None:
    """stream=True gives chunks: role first, the text, the finish reason, the usage chunk."""
    upstream.plan("alpha", Plan(pieces=["Hel", "lo", ", wor", "ld"]))
    stream = sdk.chat.completions.create(
        model="fake/alpha",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello, world"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
    assert all(c.object == "chat.completion.chunk" and c.model == "fake/alpha" for c in chunks)
    assert len({c.id for c in chunks}) == 1


def test_streamed_tool_calls(sdk: openai.OpenAI, upstream: FakeUpstream) -> None:
    """Tool calls stream as tool_calls deltas whose argument fragments join into the JSON."""
    calls = [
        ToolCall("call_a", "add", ['{"a": 1', ', "b"', ": 2}"]),
        ToolCall("call_b", "neg", ['{"x', '": 3}']),
    ]
    upstream.plan("alpha", Plan(pieces=[], tool_calls=calls, finish_reason="tool_calls"))
    tools = [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}]
    stream = sdk.chat.completions.create(
        model="fake/alpha",
        messages=[{"role": "user", "content": "add"}],
        tools=tools,
        stream=True,  # type: ignore[list-item]
    )
    found: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        for call in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            entry = found.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] += call.id or ""
            if call.function is not None:
                entry["name"] += call.function.name or ""
                entry["arguments"] += call.function.arguments or ""
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
    assert found[0] == {"id": "call_a", "name": "add", "arguments": '{"a": 1, "b": 2}'}
    assert found[1] == {"id": "call_b", "name": "neg", "arguments": '{"x": 3}'}
    assert json.loads(found[0]["arguments"]) == {"a": 1, "b": 2}
    assert finish == "tool_calls"
    assert upstream.requests[-1].body["tools"] == tools


def test_non_streaming_tool_calls(sdk: openai.OpenAI, upstream: FakeUpstream) -> None:
    """A plain answer carries message.tool_calls with the joined arguments."""
    calls = [ToolCall("call_a", "add", ['{"a"', ": 1}"])]
    upstream.plan("alpha", Plan(pieces=[], tool_calls=calls, finish_reason="tool_calls"))
    answer = sdk.chat.completions.create(
        model="fake/alpha", messages=[{"role": "user", "content": "add"}]
    )
    call = answer.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert (call.id, call.function.name, call.function.arguments) == ("call_a", "add", '{"a": 1}')  # type: ignore[union-attr]
    assert answer.choices[0].finish_reason == "tool_calls"


def test_models_lists_every_upstream(sdk: openai.OpenAI) -> None:
    """GET /v1/models lists <upstream>/<model>, a wildcard upstream's from its /models."""
    ids = [model.id for model in sdk.models.list()]
    assert ids == ["fake/alpha", "fake/beta", "wild/alpha", "wild/beta", "wild/gamma"]


def test_bare_model_names_route_when_unambiguous(
    sdk: openai.OpenAI, upstream: FakeUpstream
) -> None:
    """gamma is served by one upstream (wild): its bare name works; alpha (two) is 422."""
    answer = sdk.chat.completions.create(model="gamma", messages=[{"role": "user", "content": "x"}])
    assert answer.choices[0].message.content == "gamma says: x"
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        sdk.chat.completions.create(model="alpha", messages=[{"role": "user", "content": "x"}])
    assert caught.value.body["param"] == "model"  # type: ignore[index]


def test_sdk_exceptions_by_status(llm_server: RunningServer, sdk: openai.OpenAI) -> None:
    """401, 403, 404 and 422 raise the SDK's usual exceptions, with OpenAI's type and param."""
    messages: Any = [{"role": "user", "content": "x"}]
    bad = openai.OpenAI(base_url=f"{llm_server.url}/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as unauthorized:
        bad.chat.completions.create(model="fake/alpha", messages=messages)
    bad.close()
    assert unauthorized.value.body["type"] == "authentication_error"  # type: ignore[index]
    scoped = openai.OpenAI(base_url=f"{llm_server.url}/v1", api_key=SCOPED_KEY, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        scoped.chat.completions.create(model="fake/alpha", messages=messages)
    scoped.close()
    with pytest.raises(openai.NotFoundError) as unknown:
        sdk.chat.completions.create(model="fake/nope", messages=messages)
    assert unknown.value.body["param"] == "model"  # type: ignore[index]
    with pytest.raises(openai.UnprocessableEntityError) as invalid:
        sdk.chat.completions.create(model="fake/alpha", messages=messages, n=2)
    assert invalid.value.body["param"] == "n"  # type: ignore[index]
    assert invalid.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    with pytest.raises(openai.UnprocessableEntityError) as role:
        sdk.chat.completions.create(
            model="fake/alpha", messages=[{"role": "robot", "content": "x"}]
        )  # type: ignore[list-item, misc]
    assert role.value.body["param"] == "messages[0].role"  # type: ignore[index]


def test_rate_limit_is_rate_limit_error(
    server_factory: Callable[..., RunningServer], upstream: FakeUpstream
) -> None:
    """Past the client rate limit, /v1/ answers 429 and the SDK raises RateLimitError."""
    running = server_factory({"rate_limit": "2/minute", **llm_settings(upstream)})
    client = openai.OpenAI(base_url=f"{running.url}/v1", api_key=ADMIN_KEY, max_retries=0)
    with pytest.raises(openai.RateLimitError) as caught:
        for _ in range(3):
            client.models.list()
    client.close()
    assert caught.value.response.headers["retry-after"]
    assert caught.value.body["type"] == "rate_limit_error"  # type: ignore[index]


def test_upstream_failure_is_a_502(sdk: openai.OpenAI, upstream: FakeUpstream) -> None:
    """An upstream 500 fails the completion: 502 UPSTREAM_ERROR naming the upstream's status."""
    upstream.plan("alpha", Plan(status=500, error="model crashed"))
    with pytest.raises(openai.InternalServerError) as caught:
        sdk.chat.completions.create(model="fake/alpha", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 502
    body: Any = caught.value.body
    assert body["code"] == "UPSTREAM_ERROR"
    assert body["details"] == {"upstream": "fake", "status": 500, "message": "model crashed"}
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert body["request_id"] == caught.value.response.headers["x-request-id"]


def test_upstream_failure_mid_stream_raises_api_error(
    sdk: openai.OpenAI, upstream: FakeUpstream
) -> None:
    """A connection cut mid-answer: the text so far, then the SDK raises APIError."""
    upstream.plan("alpha", Plan(pieces=["a", "b", "c"], cut_after=2))
    stream = sdk.chat.completions.create(
        model="fake/alpha", messages=[{"role": "user", "content": "x"}], stream=True
    )
    text = ""
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            text += chunk.choices[0].delta.content or "" if chunk.choices else ""
    assert text == "ab"
    assert caught.value.body["code"] == "UPSTREAM_ERROR"  # type: ignore[index]
    assert caught.value.body["details"]["status"] == 200  # type: ignore[index]


def test_429_is_retried_after_retry_after(sdk: openai.OpenAI, upstream: FakeUpstream) -> None:
    """An upstream 429 is retried (after its Retry-After) and the answer still arrives."""
    upstream.plan("alpha", Plan(status=429, headers={"Retry-After": "0.2"}), Plan(pieces=["ok"]))
    before = len(upstream.requests)
    answer = sdk.chat.completions.create(
        model="fake/alpha", messages=[{"role": "user", "content": "x"}]
    )
    assert answer.choices[0].message.content == "ok"
    assert len(upstream.requests) - before == 2


def _sse_frames(text: str) -> list[tuple[str, str]]:
    frames = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in fields:
            frames.append((fields.get("id", ""), fields["data"]))
    return frames


@every_backbone
def test_resume_after_last_event_id(llm_server: RunningServer, upstream: FakeUpstream) -> None:
    """Breaking off and resuming with Last-Event-ID gives the rest: nothing lost or repeated."""
    upstream.plan("alpha", Plan(pieces=[f"w{i} " for i in range(12)], delay=0.05))
    body = {"model": "fake/alpha", "messages": [{"role": "user", "content": "x"}], "stream": True}
    got: list[tuple[str, str]] = []
    with llm_server.client() as client:
        with client.stream("POST", "/v1/chat/completions", json=body) as response:
            task_id = response.headers["skillwire-task-id"]
            buffer = ""
            for part in response.iter_text():
                buffer += part
                complete, _, buffer = buffer.rpartition("\n\n")
                got.extend(_sse_frames(complete))
                if sum('"content": "w' in d or '"content":"w' in d for _, d in got) >= 3:
                    break
        last = got[-1][0]
        assert all(frame_id for frame_id, _ in got)  # id: on every frame
        resumed = client.get(
            f"/v1/chat/completions/{task_id}/stream", headers={"Last-Event-ID": last}
        )
    assert resumed.headers["skillwire-task-id"] == task_id
    rest = _sse_frames(resumed.text)
    assert rest[-1][1] == "[DONE]"
    assert int(rest[0][0]) > int(last)
    chunks = [json.loads(d) for _, d in got + rest[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "".join(f"w{i} " for i in range(12))


def test_resume_after_the_end_sends_done(llm_server: RunningServer, sdk: openai.OpenAI) -> None:
    """A resume past the last frame gets [DONE] alone."""
    raw = sdk.chat.completions.with_raw_response.create(
        model="fake/alpha", messages=[{"role": "user", "content": "x"}]
    )
    task_id = raw.headers["skillwire-task-id"]
    with llm_server.client() as client:
        response = client.get(f"/v1/chat/completions/{task_id}/stream", params={"after": 10_000})
    assert _sse_frames(response.text) == [("10000", "[DONE]")]


@every_backbone
def test_cancel_closes_the_upstream_connection(
    llm_server: RunningServer, sdk: openai.OpenAI, upstream: FakeUpstream
) -> None:
    """DELETE of the task mid-answer: the upstream sees its client go within 1 s."""
    upstream.plan("alpha", Plan(pieces=["x"], hang=True))
    before = upstream.disconnects
    with sdk.chat.completions.with_streaming_response.create(
        model="fake/alpha", messages=[{"role": "user", "content": "x"}], stream=True
    ) as streamed:
        task_id = streamed.headers["skillwire-task-id"]
        wait_until(lambda: upstream.streaming > 0)
        with llm_server.client() as client:
            cancelled = client.delete(f"/api/v1/tasks/{task_id}")
        assert cancelled.status_code == 200
        asked = time.monotonic()
        wait_until(lambda: upstream.disconnects > before, timeout=2)
        assert upstream.disconnected_at[-1] - asked < 1.0


def test_front_door_needs_an_upstream(server_factory: Callable[..., RunningServer]) -> None:
    """With no upstream configured, /v1/ answers 404 in OpenAI's shape."""
    running = server_factory()
    with running.client() as client:
        response = client.get("/v1/models")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_unknown_v1_route_has_openai_shape(llm_server: RunningServer) -> None:
    """Even a route that does not exist answers in OpenAI's error shape under /v1/."""
    with llm_server.client() as client:
        response = client.post("/v1/embeddings", json={})
    error = response.json()["error"]
    assert response.status_code == 404
    assert {"code", "message", "details", "request_id", "type", "param"} <= set(error)


async def test_async_sdk_streams(llm_server: RunningServer, upstream: FakeUpstream) -> None:
    """AsyncOpenAI streams the same chunks (its own SSE reader over its own HTTP client)."""
    upstream.plan("beta", Plan(pieces=["as", "ync"]))
    client = openai.AsyncOpenAI(
        base_url=f"{llm_server.url}/v1", api_key=ADMIN_KEY, max_retries=0, timeout=scaled(30)
    )
    try:
        stream = await client.chat.completions.create(
            model="fake/beta", messages=[{"role": "user", "content": "x"}], stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    finally:
        await client.close()
    assert text == "async"
