"""The ``llm/chat`` skill over WebSocket, SSE and NDJSON, on both backbones."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from tests.channels.helpers import TERMINAL, ws, ws_events_until_terminal, ws_next
from tests.conftest import RunningServer, scaled, wait_until
from tests.server.conftest import events_of

from .conftest import llm_settings
from .upstream import FakeUpstream, Plan, ToolCall

HI = [{"role": "user", "content": "hi"}]


def outputs_from(events: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """Each request's outputs as a client rebuilds them: outputs, deltas, reset on start."""
    outputs: dict[int, list[dict[str, Any]]] = {}
    for event in events:
        index = event.get("index")
        if event["type"] == "request.started":
            outputs[index] = []
        elif event["type"] == "request.output":
            outputs.setdefault(index, []).append(dict(event["data"]))
        elif event["type"] == "request.delta":
            data = event["data"]
            outputs[index][data["output"]][data["field"]] += data["append"]
    return outputs


def _sse_events(server: RunningServer, body: dict[str, Any]) -> list[dict[str, Any]]:
    events = []
    with server.client() as client:
        with client.stream(
            "POST", "/api/v1/apps/llm/chat", json=body, headers={"Accept": "text/event-stream"}
        ) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
    return events


def _ndjson_events(server: RunningServer, body: dict[str, Any]) -> list[dict[str, Any]]:
    with server.client() as client:
        with client.stream(
            "POST", "/api/v1/apps/llm/chat", json=body, params={"stream": "true"}
        ) as response:
            assert response.status_code == 200
            return [json.loads(line) for line in response.iter_lines() if line]


async def test_two_models_in_one_call_over_websocket(llm_server: RunningServer) -> None:
    """One WS call compares two models: each request streams its own message and result."""
    async with ws(llm_server) as conn:
        await conn.send(
            json.dumps(
                {
                    "op": "call",
                    "ref": "c1",
                    "app": "llm",
                    "skill": "chat",
                    "requests": [
                        {"model": "fake/alpha", "messages": HI},
                        {"model": "fake/beta", "messages": HI},
                    ],
                }
            )
        )
        accepted = await ws_next(conn)
        assert accepted["op"] == "accepted"
        events = await ws_events_until_terminal(conn, accepted["task_id"])
    outputs = outputs_from(events)
    assert outputs[0] == [{"type": "message", "role": "assistant", "text": "alpha says: hi"}]
    assert outputs[1] == [{"type": "message", "role": "assistant", "text": "beta says: hi"}]
    assert any(e["type"] == "request.delta" for e in events)
    completed = [e for e in events if e["type"] == "request.completed"]
    assert {e["index"] for e in completed} == {0, 1}
    for event in completed:
        assert event["data"]["finish_reason"] == "stop"
        assert event["data"]["usage"] == {
            "prompt_tokens": 7,
            "completion_tokens": 5,
            "total_tokens": 12,
        }
    task = events[-1]["data"]
    assert task["status"] == "completed"
    assert task["requests"][0]["result"]["finish_reason"] == "stop"
    assert task["requests"][1]["output"][0]["text"] == "beta says: hi"


def test_chat_over_sse_with_tool_calls(llm_server: RunningServer, upstream: FakeUpstream) -> None:
    """Over SSE: the message and a tool call whose arguments grow by deltas, as the Task holds."""
    calls = [ToolCall("call_1", "add", ['{"a', '": 1}'])]
    upstream.plan("alpha", Plan(pieces=["On it"], tool_calls=calls, finish_reason="tool_calls"))
    events = _sse_events(llm_server, {"requests": [{"model": "fake/alpha", "messages": HI}]})
    assert events[-1]["type"] == "task.completed"
    rebuilt = outputs_from(events)[0]
    assert rebuilt == [
        {"type": "message", "role": "assistant", "text": "On it"},
        {"type": "tool_call", "id": "call_1", "name": "add", "arguments": '{"a": 1}'},
    ]
    assert events[-1]["data"]["requests"][0]["output"] == rebuilt
    assert events[-1]["data"]["requests"][0]["result"]["finish_reason"] == "tool_calls"


def test_chunks_that_arrive_together_are_one_delta_per_run(
    llm_server: RunningServer, upstream: FakeUpstream
) -> None:
    """Chunks read in one go are appended as one delta per run of text, in the upstream's order."""
    calls = [ToolCall("call_1", "add", ['{"a', '": 1}'])]
    upstream.plan(
        "alpha",
        Plan(pieces=["Hel", "lo", ", wor", "ld"], tool_calls=calls, together=True),
    )
    events = _sse_events(llm_server, {"requests": [{"model": "fake/alpha", "messages": HI}]})
    assert events[-1]["type"] == "task.completed"
    stored = events_of(llm_server, events[0]["task_id"])
    steps = [
        (e["type"], e["data"].get("append") if e["type"] == "request.delta" else None)
        for e in stored
        if e["type"] in ("request.output", "request.delta")
    ]
    assert steps == [
        ("request.output", None),
        ("request.delta", "Hello, world"),
        ("request.output", None),
        ("request.delta", '{"a": 1}'),
    ]


def test_chat_over_ndjson(llm_server: RunningServer) -> None:
    """Over NDJSON: the answer streams as deltas on output 0's text."""
    events = _ndjson_events(llm_server, {"requests": [{"model": "fake/beta", "messages": HI}]})
    assert events[-1]["type"] == "task.completed"
    assert outputs_from(events)[0][0]["text"] == "beta says: hi"


def test_upstream_429_queues_until_retry_at(
    llm_server: RunningServer, upstream: FakeUpstream
) -> None:
    """A 429 with Retry-After: request.queued (upstream_rate_limit, retry_at), then it runs."""
    upstream.plan("alpha", Plan(status=429, headers={"Retry-After": "0.3"}), Plan(pieces=["fine"]))
    events = _sse_events(llm_server, {"requests": [{"model": "fake/alpha", "messages": HI}]})
    types = [e["type"] for e in events if e["type"].startswith("request.")]
    assert types[:3] == ["request.started", "request.queued", "request.started"]
    queued = next(e for e in events if e["type"] == "request.queued")
    assert queued["data"]["reason"] == "upstream_rate_limit"
    assert queued["data"]["retry_at"].endswith("Z")
    assert events[-1]["type"] == "task.completed"
    assert outputs_from(events)[0][0]["text"] == "fine"


def test_retries_run_out_into_upstream_error(
    llm_server: RunningServer, upstream: FakeUpstream
) -> None:
    """503 after max_retries (2): UPSTREAM_ERROR with the upstream, its status and message."""
    busy = Plan(status=503, headers={"Retry-After": "0"}, error="overloaded")
    upstream.plan("alpha", busy, busy, busy)
    events = _sse_events(llm_server, {"requests": [{"model": "fake/alpha", "messages": HI}]})
    assert sum(e["type"] == "request.queued" for e in events) == 2
    failed = next(e for e in events if e["type"] == "request.failed")
    assert failed["data"]["error"]["code"] == "UPSTREAM_ERROR"
    assert failed["data"]["error"]["details"] == {
        "upstream": "fake",
        "status": 503,
        "message": "overloaded",
    }


def test_cut_mid_stream_keeps_the_partial_text(
    llm_server: RunningServer, upstream: FakeUpstream
) -> None:
    """A connection cut mid-answer fails the request (status 200) and keeps the text so far."""
    upstream.plan("alpha", Plan(pieces=["par", "tial", "never"], cut_after=2))
    events = _sse_events(llm_server, {"requests": [{"model": "fake/alpha", "messages": HI}]})
    task = events[-1]["data"]
    assert task["status"] == "failed"
    assert task["requests"][0]["output"][0]["text"] == "partial"
    assert task["requests"][0]["error"]["details"]["status"] == 200


def test_unknown_model_fails_the_request(llm_server: RunningServer) -> None:
    """A model no upstream serves fails its request with VALIDATION_ERROR naming the model."""
    events = _sse_events(llm_server, {"requests": [{"model": "fake/nope", "messages": HI}]})
    failed = next(e for e in events if e["type"] == "request.failed")
    assert failed["data"]["error"]["code"] == "VALIDATION_ERROR"
    assert failed["data"]["error"]["details"]["field"] == "model"


def test_n_other_than_one_is_422(llm_server: RunningServer) -> None:
    """n: 2 is refused at call time with 422 naming requests[0].n."""
    with llm_server.client() as client:
        response = client.post(
            "/api/v1/apps/llm/chat",
            json={"requests": [{"model": "fake/alpha", "messages": HI, "n": 2}]},
        )
    assert response.status_code == 422
    assert response.json()["error"]["details"]["field"] == "requests[0].n"


def test_provider_limit_queues_never_rejects(
    server_factory: Callable[..., RunningServer], upstream: FakeUpstream
) -> None:
    """fake.chat.alpha at 1/second: the second request waits (provider_rate_limit), then runs."""
    running = server_factory(
        {**llm_settings(upstream), "provider_limits": {"fake.chat.alpha": "1/second"}}
    )
    body = {"requests": [{"model": "fake/alpha", "messages": HI}] * 2}
    events = _sse_events(running, body)
    queued = [e for e in events if e["type"] == "request.queued"]
    assert [e["data"]["reason"] for e in queued] == ["provider_rate_limit"]
    assert events[-1]["type"] == "task.completed"
    assert all(o[0]["text"] == "alpha says: hi" for o in outputs_from(events).values())


def test_skill_timeout_closes_the_upstream(
    server_factory: Callable[..., RunningServer], upstream: FakeUpstream
) -> None:
    """A slow first token past the skill timeout: TIMEOUT, and the upstream sees the hang-up."""
    running = server_factory({**llm_settings(upstream), "skill_timeouts": {"llm.chat": 0.5}})
    upstream.plan("alpha", Plan(first_delay=scaled(5)))
    before = upstream.disconnects
    events = _sse_events(running, {"requests": [{"model": "fake/alpha", "messages": HI}]})
    failed = next(e for e in events if e["type"] == "request.failed")
    assert failed["data"]["error"]["code"] == "TIMEOUT"
    wait_until(lambda: upstream.disconnects > before, timeout=2)


def test_slow_first_token_is_waited_for(llm_server: RunningServer, upstream: FakeUpstream) -> None:
    """A first token after a second still makes a complete answer."""
    upstream.plan("alpha", Plan(first_delay=1.0, pieces=["late"]))
    events = _sse_events(llm_server, {"requests": [{"model": "fake/alpha", "messages": HI}]})
    assert outputs_from(events)[0][0]["text"] == "late"


def test_metrics_and_audit(
    llm_server: RunningServer, upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    """Tokens, time to first token and upstream errors are counted; audit lines hold no text."""
    upstream.plan("beta", Plan(status=500), Plan(pieces=["secret words"]))
    with caplog.at_level(logging.INFO, logger="skillwire.audit"):
        _sse_events(
            llm_server,
            {
                "requests": [
                    {"model": "fake/beta", "messages": [{"role": "user", "content": "private"}]}
                ]
            },
        )
        _sse_events(llm_server, {"requests": [{"model": "fake/beta", "messages": HI}]})
    with llm_server.client() as client:
        text = client.get("/metrics").text
    assert 'skillwire_llm_tokens_total{kind="completion",model="beta",upstream="fake"} 5.0' in text
    assert 'skillwire_llm_tokens_total{kind="prompt",model="beta",upstream="fake"} 7.0' in text
    assert (
        'skillwire_llm_time_to_first_token_seconds_count{model="beta",upstream="fake"} 1.0' in text
    )
    assert 'skillwire_llm_upstream_errors_total{status="500",upstream="fake"} 1.0' in text
    lines = [r for r in caplog.records if r.name == "skillwire.audit"]
    chats = [r.fields for r in lines if r.fields.get("audit") == "llm.chat"]  # type: ignore[attr-defined]
    assert chats[-1]["model"] == "fake/beta"
    assert chats[-1]["completion_tokens"] == 5
    for record in lines:
        assert "secret" not in json.dumps(record.fields) and "private" not in json.dumps(
            record.fields
        )  # type: ignore[attr-defined]


def test_task_log_matches_task(llm_server: RunningServer) -> None:
    """The stored log rebuilds exactly the text the Task holds."""
    events = _sse_events(llm_server, {"requests": [{"model": "fake/alpha", "messages": HI}]})
    task_id = events[0]["task_id"]
    stored = events_of(llm_server, task_id)
    assert outputs_from(stored)[0] == events[-1]["data"]["requests"][0]["output"]
    assert stored[-1]["type"] in TERMINAL


def test_time_to_first_token_counts_from_the_first_token(
    llm_server: RunningServer, upstream: FakeUpstream
) -> None:
    """The histogram measures to the first token, not to the role-only chunk sent at once."""
    upstream.plan("alpha", Plan(first_delay=0.4, pieces=["late"]))
    _sse_events(llm_server, {"requests": [{"model": "fake/alpha", "messages": HI}]})
    with llm_server.client() as client:
        text = client.get("/metrics").text
    line = next(
        x
        for x in text.splitlines()
        if x.startswith(
            'skillwire_llm_time_to_first_token_seconds_sum{model="alpha",upstream="fake"}'
        )
    )
    assert float(line.split()[-1]) >= 0.4
