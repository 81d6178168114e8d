"""NDJSON on the events URL and the streaming POST, against a real server."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.channels.helpers import ndjson_events, seqs, start_task
from tests.conftest import ADMIN_KEY, HEARTBEAT, RunningServer, scaled


def test_one_event_per_line_until_terminal(server: RunningServer) -> None:
    """Accept: application/x-ndjson gives one event JSON per line, ending after the terminal event."""
    task_id = start_task(
        server, "countdown", [{"n": 3, "interval": 0.01}, {"n": 2, "interval": 0.01}]
    )
    events = ndjson_events(server, task_id)
    assert seqs(events) == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "task.completed"
    assert {e["index"] for e in events if e["type"].startswith("request.")} == {0, 1}
    assert all("index" not in e for e in events if e["type"].startswith("task."))


def test_empty_line_heartbeat(heartbeat_server: RunningServer) -> None:
    """An empty line is the heartbeat when nothing else was sent for one interval."""
    server = heartbeat_server
    # A gap of 20 intervals: with 3, a busy machine could connect after the gap had passed,
    # and the whole log then came at once, with no heartbeat to see.
    task_id = start_task(server, "countdown", [{"n": 1, "interval": 20 * HEARTBEAT}])
    with (
        server.client() as client,
        client.stream(
            "GET", f"/api/v1/tasks/{task_id}/events", headers={"Accept": "application/x-ndjson"}
        ) as response,
    ):
        lines = list(response.iter_lines())
    assert "" in lines
    assert json.loads([line for line in lines if line][-1])["type"] == "task.completed"


def test_resume_with_after(server: RunningServer) -> None:
    """?after=N resumes NDJSON with the events after seq N."""
    task_id = start_task(server, "countdown", [{"n": 3, "interval": 0.01}])
    full = ndjson_events(server, task_id)
    assert ndjson_events(server, task_id, params={"after": "4"}) == full[4:]


@pytest.mark.parametrize(
    ("query", "headers"),
    [("?stream=true", {}), ("", {"Accept": "application/x-ndjson"})],
)
def test_streaming_post_answers_ndjson(
    server: RunningServer, query: str, headers: dict[str, str]
) -> None:
    """POST with ?stream=true or Accept: application/x-ndjson streams the call's events."""
    with (
        server.client() as client,
        client.stream(
            "POST",
            f"/api/v1/apps/demo/echo{query}",
            json={"requests": [{"text": "a"}, {"text": "b"}]},
            headers=headers,
        ) as response,
    ):
        assert response.status_code == 200
        events = [json.loads(line) for line in response.iter_lines() if line]
    assert events[-1]["type"] == "task.completed"
    assert events[-1]["data"]["previews"] == [
        {"type": "text", "text": "a"},
        {"type": "text", "text": "b"},
    ]


@pytest.mark.parametrize("value", ["yes", "True1", "2"])
def test_streaming_post_with_a_bad_stream_value_is_400_and_creates_no_task(
    server: RunningServer, value: str
) -> None:
    """?stream= other than true/false/1/0 is a 400 BAD_REQUEST naming it, and no task is made."""
    with server.client() as client:
        response = client.post(
            "/api/v1/apps/demo/echo", params={"stream": value}, json={"requests": [{"text": "a"}]}
        )
        assert response.status_code == 400
        error = response.json()["error"]
        assert (error["code"], error["details"]) == ("BAD_REQUEST", {"field": "stream"})
        assert client.get("/api/v1/tasks").json()["total"] == 0


def test_streaming_post_with_stream_false_answers_json(server: RunningServer) -> None:
    """?stream=false is a plain call: the Task as JSON."""
    with server.client() as client:
        response = client.post(
            "/api/v1/apps/demo/echo?stream=false", json={"requests": [{"text": "a"}]}
        )
    assert response.status_code == 200
    assert response.json()["status"] == "completed"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_docs_curl_example(server: RunningServer) -> None:
    """The docs' `curl -N` NDJSON example prints every event of the task, one per line."""
    task_id = start_task(server, "countdown", [{"n": 3, "interval": 0.05}])
    result = subprocess.run(
        [
            "curl",
            "-sN",
            f"{server.url}/api/v1/tasks/{task_id}/events",
            "-H",
            f"Authorization: Bearer {ADMIN_KEY}",
            "-H",
            "Accept: application/x-ndjson",
        ],
        capture_output=True,
        text=True,
        timeout=scaled(20),
        check=True,
    )
    events = [json.loads(line) for line in result.stdout.splitlines() if line]
    assert seqs(events) == list(range(1, 12))


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        ("text/event-stream;q=0, application/x-ndjson", "application/x-ndjson"),
        ("text/event-stream;q=0.5, application/x-ndjson", "application/x-ndjson"),
        ("application/x-ndjson, text/event-stream", "text/event-stream"),
        ("application/x-ndjson;q=0", "text/event-stream"),
    ],
)
def test_events_url_honours_accept_q_values(
    server: RunningServer, accept: str, content_type: str
) -> None:
    """The events URL picks the framing by Accept q-values: a type with q=0 is refused."""
    task_id = start_task(server, "countdown", [{"n": 1, "interval": 0.01}])
    with (
        server.client() as client,
        client.stream(
            "GET", f"/api/v1/tasks/{task_id}/events", headers={"Accept": accept}
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(content_type)
        response.read()


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        ("text/event-stream;q=0", "application/json"),
        ("application/x-ndjson;q=0", "application/json"),
        ("text/event-stream;q=0, application/x-ndjson", "application/x-ndjson"),
        ("text/event-stream;q=0.2, application/x-ndjson;q=0.9", "application/x-ndjson"),
    ],
)
def test_streaming_post_honours_accept_q_values(
    server: RunningServer, accept: str, content_type: str
) -> None:
    """The POST streams only a type Accept wants (q > 0), the preferred one; else the Task as JSON."""
    with (
        server.client() as client,
        client.stream(
            "POST",
            "/api/v1/apps/demo/echo",
            json={"requests": [{"text": "a"}]},
            headers={"Accept": accept},
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(content_type)
        response.read()
