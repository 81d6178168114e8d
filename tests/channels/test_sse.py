"""SSE at GET /api/v1/tasks/{id}/events, against a real server."""

from __future__ import annotations

import json

import pytest

from tests.channels.helpers import seqs, sse_events, sse_frames, start_task
from tests.conftest import HEARTBEAT, OTHER_KEY, USER_KEY, RunningServer, scaled, wait_until


def test_stream_frames_retry_first_and_ends_after_terminal(server: RunningServer) -> None:
    """The stream opens with retry:, frames carry id/event/data, and it ends after the terminal event."""
    task_id = start_task(server, "countdown", [{"n": 3, "interval": 0.01}])
    with (
        server.client() as client,
        client.stream("GET", f"/api/v1/tasks/{task_id}/events") as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        frames = [f for f in sse_frames(response) if "comment" not in f]
    assert "retry" in frames[0]
    events = [json.loads(f["data"]) for f in frames[1:]]
    assert seqs(events) == list(range(1, 12))
    assert events[-1]["type"] == "task.completed"
    assert events[-1]["data"]["last_seq"] == 11
    assert all(
        f["id"] == str(e["seq"]) and f["event"] == e["type"]
        for f, e in zip(frames[1:], events, strict=True)
    )


def test_heartbeat_comment_when_idle(heartbeat_server: RunningServer) -> None:
    """A `: heartbeat` comment is sent whenever nothing else was sent for one interval (0.1 s here)."""
    server = heartbeat_server
    # A gap of 20 intervals: with 3, a busy machine could connect after the gap had passed,
    # and the whole log then came at once, with no heartbeat to see.
    task_id = start_task(server, "countdown", [{"n": 1, "interval": 20 * HEARTBEAT}])
    with (
        server.client() as client,
        client.stream("GET", f"/api/v1/tasks/{task_id}/events") as response,
    ):
        frames = list(sse_frames(response))
    assert {"comment": "heartbeat"} in frames
    assert frames[-1].get("event") == "task.completed"


def test_resume_with_last_event_id_and_after(server: RunningServer) -> None:
    """Last-Event-ID and ?after= both resume with the events after that seq; the larger wins."""
    task_id = start_task(server, "countdown", [{"n": 4, "interval": 0.01}])
    full = sse_events(server, task_id)
    assert seqs(sse_events(server, task_id, headers={"Last-Event-ID": "5"})) == seqs(full)[5:]
    assert seqs(sse_events(server, task_id, params={"after": "7"})) == seqs(full)[7:]
    both = sse_events(server, task_id, headers={"Last-Event-ID": "9"}, params={"after": "2"})
    assert seqs(both) == seqs(full)[9:]


def test_finished_task_resumed_past_its_end_ends_at_once(server: RunningServer) -> None:
    """A finished task whose last seq is <= after gives a stream that ends at once."""
    task_id = start_task(server, "echo", [{"text": "x"}])
    last = sse_events(server, task_id)[-1]["seq"]
    assert sse_events(server, task_id, params={"after": str(last)}) == []
    assert sse_events(server, task_id, params={"after": str(last + 100)}) == []


@pytest.mark.parametrize("after", ["1000", str(10**30)])
@pytest.mark.parametrize("accept", ["text/event-stream", "application/x-ndjson"])
def test_running_task_resumed_past_its_end_ends_when_the_task_does(
    server: RunningServer, accept: str, after: str
) -> None:
    """A stream whose after is beyond a running task's last seq ends when the task finishes
    (however large after is: the stream does not end early on a backbone error)."""
    task_id = start_task(server, "countdown", [{"n": 4, "interval": 0.2}])
    body = b""
    with (
        server.client() as client,
        client.stream(
            "GET",
            f"/api/v1/tasks/{task_id}/events",
            headers={"Accept": accept},
            params={"after": after},
            timeout=scaled(10),  # heartbeats alone would keep a stream that never ends open
        ) as response,
    ):
        assert response.status_code == 200
        for chunk in response.iter_bytes():
            body += chunk
        task = client.get(f"/api/v1/tasks/{task_id}").json()
    assert task["status"] == "completed"
    assert b"data:" not in body and b'"seq"' not in body  # nothing at or before after was sent


def test_bad_resume_values_are_400(server: RunningServer) -> None:
    """after and Last-Event-ID must be non-negative integers, else 400 BAD_REQUEST."""
    task_id = start_task(server, "echo", [{"text": "x"}])
    with server.client() as client:
        for params, headers in [
            ({"after": "-1"}, {}),
            ({"after": "abc"}, {}),
            ({}, {"Last-Event-ID": "x7"}),
            ({}, {"Last-Event-ID": "-3"}),
            ({"snapshot": "maybe"}, {}),
            ({"after": "+1"}, {}),
            ({"after": " 1"}, {}),
            ({"after": "1 "}, {}),
            ({"after": "\u0661"}, {}),  # ARABIC-INDIC DIGIT ONE
            ({"after": "\uff11"}, {}),  # FULLWIDTH DIGIT ONE
            ({"after": "\u00b2"}, {}),  # SUPERSCRIPT TWO
        ]:
            response = client.get(f"/api/v1/tasks/{task_id}/events", params=params, headers=headers)
            assert response.status_code == 400, (params, headers)
            assert response.json()["error"]["code"] == "BAD_REQUEST"
        raw_plus = client.get(f"/api/v1/tasks/{task_id}/events?after=+1")  # "+" is a space
        assert raw_plus.status_code == 400


def test_unknown_and_foreign_tasks_are_404(server: RunningServer) -> None:
    """An unknown task, or another principal's, answers 404 in the envelope before any stream."""
    task_id = start_task(server, "echo", [{"text": "x"}], key=USER_KEY)
    with server.client(OTHER_KEY) as client:
        response = client.get(f"/api/v1/tasks/{task_id}/events")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "NOT_FOUND"
        response = client.get("/api/v1/tasks/tsk_nope/events")
        assert response.status_code == 404
    with server.client(None) as client:
        assert client.get(f"/api/v1/tasks/{task_id}/events").status_code == 401


def test_snapshot_on_request(server: RunningServer) -> None:
    """?snapshot=true sends a task.snapshot with seq N first, then the events after N."""
    task_id = start_task(server, "countdown", [{"n": 3, "interval": 0.01}])
    events = sse_events(server, task_id, params={"snapshot": "true", "after": "0"})
    assert events[0]["type"] == "task.snapshot"
    assert events[0]["seq"] == events[0]["data"]["last_seq"]
    assert seqs(events[1:]) == list(
        range(events[0]["seq"] + 1, events[0]["seq"] + 1 + len(events) - 1)
    )


def test_log_older_than_after_forces_snapshot(server_factory) -> None:  # type: ignore[no-untyped-def]
    """When the log no longer holds the events after `after`, a snapshot comes first anyway."""
    server = server_factory({"max_events": 10})
    task_id = start_task(server, "countdown", [{"n": 60, "interval": 0.02}])
    with server.client() as client:
        wait_until(lambda: client.get(f"/api/v1/tasks/{task_id}").json()["last_seq"] > 30)
    events = sse_events(server, task_id)
    assert events[0]["type"] == "task.snapshot"
    assert events[0]["data"]["last_seq"] == events[0]["seq"] > 30
    assert seqs(events[1:]) == list(range(events[0]["seq"] + 1, events[-1]["seq"] + 1))
    assert events[-1]["type"] == "task.completed"


def test_streaming_post_answers_sse(server: RunningServer) -> None:
    """POST with Accept: text/event-stream answers 200 and streams the new task's events."""
    with (
        server.client() as client,
        client.stream(
            "POST",
            "/api/v1/apps/demo/countdown",
            json={"requests": [{"n": 2, "interval": 0.01}]},
            headers={"Accept": "text/event-stream"},
        ) as response,
    ):
        assert response.status_code == 200
        events = [json.loads(f["data"]) for f in sse_frames(response) if "data" in f]
    assert seqs(events) == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "task.completed"
