"""The built-in demo app (echo, countdown, fail, stream) and the skills listing, over HTTP."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from skillwire.server.engine._demo import PARAGRAPH
from tests.conftest import RunningServer
from tests.server.conftest import assert_error

COUNTDOWN = "/api/v1/apps/demo/countdown"


def test_apps_lists_the_demo_skills(shared_server: RunningServer) -> None:
    """GET /api/v1/apps lists demo with echo (quick), countdown (long), fail (quick) and
    stream (long)."""
    with shared_server.client() as client:
        body = client.get("/api/v1/apps").json()
    assert [a["app"] for a in body["items"]] == ["demo"]
    skills = {s["skill"]: s for s in body["items"][0]["skills"]}
    assert set(skills) == {"echo", "countdown", "fail", "stream"}
    assert {name: s["mode"] for name, s in skills.items()} == {
        "echo": "quick",
        "countdown": "long",
        "fail": "quick",
        "stream": "long",
    }
    for skill in skills.values():
        assert set(skill) == {"app", "skill", "description", "mode", "input_schema", "max_requests"}
        assert skill["app"] == "demo"
        assert skill["description"]
        assert skill["max_requests"] == 5


def test_describe_one_skill(shared_server: RunningServer) -> None:
    """GET /api/v1/apps/demo/countdown describes it, with the constraints in its schema."""
    with shared_server.client() as client:
        skill = client.get(COUNTDOWN).json()
        listed = client.get("/api/v1/apps").json()["items"][0]["skills"]
    assert skill == next(s for s in listed if s["skill"] == "countdown")
    properties = skill["input_schema"]["properties"]
    assert properties["n"] == {"type": "integer", "minimum": 1, "maximum": 10000, "default": 5}
    assert properties["interval"] == {"type": "number", "minimum": 0, "maximum": 60, "default": 0.2}


def test_echo_schema(shared_server: RunningServer) -> None:
    """demo/echo takes a required text and an optional fail flag."""
    with shared_server.client() as client:
        schema = client.get("/api/v1/apps/demo/echo").json()["input_schema"]
    assert schema["required"] == ["text"]
    assert schema["properties"]["text"] == {"type": "string"}
    assert schema["properties"]["fail"] == {"type": "boolean", "default": False}


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        ({"n": 0}, "requests[0].n"),
        ({"n": 10001}, "requests[0].n"),
        ({"n": -1}, "requests[0].n"),
        ({"n": "3"}, "requests[0].n"),
        ({"interval": 61}, "requests[0].interval"),
        ({"interval": -0.1}, "requests[0].interval"),
        ({"interval": "fast"}, "requests[0].interval"),
    ],
)
def test_countdown_validation(
    shared_server: RunningServer, request_: dict[str, Any], field: str
) -> None:
    """countdown's n must be 1..10000 and interval 0..60, else 422 naming the field."""
    with shared_server.client() as client:
        response = client.post(COUNTDOWN, json={"requests": [request_]})
    error = assert_error(response, 422, "VALIDATION_ERROR")
    assert error["details"]["field"] == field


def test_countdown_counts_to_5_by_default(shared_server: RunningServer) -> None:
    """countdown without n counts to 5 (interval 0 here, to be quick)."""
    with shared_server.client() as client:
        response = client.post(
            COUNTDOWN, json={"requests": [{"interval": 0}]}, headers={"Prefer": "wait=10"}
        )
    task = response.json()
    assert task["status"] == "completed"
    assert task["previews"] == [{"type": "tick", "i": i} for i in range(1, 6)]


def test_countdown_with_zero_interval(shared_server: RunningServer) -> None:
    """interval 0 is allowed and ticks as fast as it can."""
    with shared_server.client() as client:
        response = client.post(
            COUNTDOWN, json={"requests": [{"n": 50, "interval": 0}]}, headers={"Prefer": "wait=10"}
        )
    task = response.json()
    assert task["status"] == "completed"
    assert len(task["previews"]) == 50
    assert task["last_seq"] == 2 + 1 + 2 * 50 + 1 + 1


def test_echo_fail_flag(shared_server: RunningServer) -> None:
    """echo with fail true fails with SKILL_ERROR."""
    with shared_server.client() as client:
        task = client.post(
            "/api/v1/apps/demo/echo", json={"requests": [{"text": "x", "fail": True}]}
        ).json()
    assert task["status"] == "failed"
    assert task["requests"][0]["error"]["code"] == "SKILL_ERROR"


def test_fail_requires_a_message(shared_server: RunningServer) -> None:
    """demo/fail without a message answers 422."""
    with shared_server.client() as client:
        response = client.post("/api/v1/apps/demo/fail", json={"requests": [{}]})
    assert_error(response, 422, "VALIDATION_ERROR")


STREAM = "/api/v1/apps/demo/stream"


def test_stream_schema(shared_server: RunningServer) -> None:
    """demo/stream takes an optional text (a paragraph) and words_per_second 1..1000 = 20."""
    with shared_server.client() as client:
        schema = client.get(STREAM).json()["input_schema"]
    assert schema.get("required", []) == []
    assert schema["properties"]["text"]["default"] == PARAGRAPH
    assert schema["properties"]["words_per_second"] == {
        "type": "number",
        "minimum": 1,
        "maximum": 1000,
        "default": 20,
    }


@pytest.mark.parametrize("rate", [0, 0.5, 1001, "fast"])
def test_stream_rate_validation(shared_server: RunningServer, rate: Any) -> None:
    """words_per_second outside 1..1000 answers 422 naming the field."""
    with shared_server.client() as client:
        response = client.post(STREAM, json={"requests": [{"words_per_second": rate}]})
    error = assert_error(response, 422, "VALIDATION_ERROR")
    assert error["details"]["field"] == "requests[0].words_per_second"


@pytest.mark.parametrize(
    "text", [PARAGRAPH, "  two  spaces\tand a tab\n", "one", "", "éàü 漢字 🙂 end "]
)
def test_stream_types_the_text_word_by_word(shared_server: RunningServer, text: str) -> None:
    """One streamed output grown by deltas on its text: the deltas joined and the Task's
    output both equal the text exactly, whitespace and non-ASCII included."""
    with shared_server.client() as client:
        body = {"requests": [{"text": text, "words_per_second": 1000}]}
        task = client.post(STREAM, json=body, headers={"Prefer": "wait=20"}).json()
        assert task["status"] == "completed"
        assert task["requests"][0]["output"] == [{"type": "text", "text": text}]
        events = client.get(
            f"/api/v1/tasks/{task['task_id']}/events", headers={"Accept": "application/x-ndjson"}
        )
    lines = [json.loads(line) for line in events.text.splitlines() if line]
    outputs = [e["data"] for e in lines if e["type"] == "request.output"]
    deltas = [e["data"] for e in lines if e["type"] == "request.delta"]
    assert outputs == [{"type": "text", "text": ""}]
    assert all(d["output"] == 0 and d["field"] == "text" for d in deltas)
    assert "".join(d["append"] for d in deltas) == text


def test_stream_keeps_its_rate(shared_server: RunningServer) -> None:
    """20 words at 100 words/s take about 0.2 s, not less."""
    with shared_server.client() as client:
        body = {"requests": [{"text": "w " * 20, "words_per_second": 100}]}
        task = client.post(STREAM, json=body, headers={"Prefer": "wait=20"}).json()
    assert task["status"] == "completed"
    started = datetime.fromisoformat(task["created_at"])
    finished = datetime.fromisoformat(task["finished_at"])
    assert (finished - started).total_seconds() >= 0.19
