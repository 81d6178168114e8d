"""Calling a skill: quick and long calls, Prefer, events, previews, Idempotency-Key."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import OTHER_KEY, USER_KEY, RunningServer, scaled, wait_until
from tests.server.conftest import (
    assert_error,
    cancel_quietly,
    events_of,
    finished,
    start_countdown,
    task_of,
)

ECHO = "/api/v1/apps/demo/echo"
COUNTDOWN = "/api/v1/apps/demo/countdown"
TERMINAL = {"completed", "partial", "failed", "cancelled"}


def test_quick_call_is_200_completed(any_server: RunningServer) -> None:
    """A quick call that finishes within the quick wait answers 200 with the finished Task."""
    with any_server.client(USER_KEY) as client:
        response = client.post(ECHO, json={"requests": [{"text": "hello"}]})
    assert response.status_code == 200
    assert "location" not in response.headers
    task = response.json()
    assert task["task_id"].startswith("tsk_")
    assert (task["app"], task["skill"], task["status"]) == ("demo", "echo", "completed")
    assert task["finished_at"] is not None
    for stamp in (task["created_at"], task["updated_at"], task["finished_at"]):
        assert stamp.endswith("Z")
        assert "T" in stamp
    assert task["created_at"] <= task["finished_at"]
    assert task["error"] is None
    assert task["requests"] == [
        {
            "index": 0,
            "status": "completed",
            "progress": 1.0,
            "output": [{"type": "text", "text": "hello"}],
            "outputs_dropped": 0,
            "result": None,
            "error": None,
        }
    ]
    assert task["previews"] == [{"type": "text", "text": "hello"}]
    assert task["links"] == {
        "self": f"/api/v1/tasks/{task['task_id']}",
        "events": f"/api/v1/tasks/{task['task_id']}/events",
    }
    assert task["metadata"] == {}


def test_task_ids_are_unguessable_and_distinct(any_server: RunningServer) -> None:
    """Task ids are url-safe, long enough for 96 random bits, and never repeat."""
    with any_server.client() as client:
        ids = [
            client.post(ECHO, json={"requests": [{"text": "a"}]}).json()["task_id"]
            for _ in range(10)
        ]
    assert len(set(ids)) == 10
    for task_id in ids:
        assert task_id.startswith("tsk_")
        assert len(task_id) - 4 >= 16  # 96 bits = 16 base64 characters, at least
        assert all(c.isalnum() or c in "-_" for c in task_id[4:])


def test_partial_call(any_server: RunningServer) -> None:
    """One failing request among completed ones makes the task partial; siblings carry on."""
    with any_server.client() as client:
        response = client.post(
            ECHO, json={"requests": [{"text": "a"}, {"text": "b", "fail": True}, {"text": "c"}]}
        )
    assert response.status_code == 200
    task = response.json()
    assert task["status"] == "partial"
    assert [r["status"] for r in task["requests"]] == ["completed", "failed", "completed"]
    assert task["requests"][1]["error"]["code"] == "SKILL_ERROR"
    assert "b" in task["requests"][1]["error"]["message"]
    assert task["requests"][1]["output"] == []
    assert task["previews"] == [{"type": "text", "text": "a"}, {"type": "text", "text": "c"}]


def test_failed_call(any_server: RunningServer) -> None:
    """demo/fail ends the task failed, with SKILL_ERROR and the message on request and task."""
    with any_server.client() as client:
        response = client.post(
            "/api/v1/apps/demo/fail", json={"requests": [{"message": "it broke"}]}
        )
    assert response.status_code == 200
    task = response.json()
    assert task["status"] == "failed"
    error = task["requests"][0]["error"]
    assert error["code"] == "SKILL_ERROR"
    assert error["message"] == "it broke"
    assert task["error"]["code"] == "SKILL_ERROR"
    assert task["previews"] == []


def test_all_requests_failing_is_failed(any_server: RunningServer) -> None:
    """A task whose every request failed is failed, not partial."""
    with any_server.client() as client:
        task = client.post(
            ECHO, json={"requests": [{"text": "a", "fail": True}, {"text": "b", "fail": True}]}
        ).json()
    assert task["status"] == "failed"
    assert [r["status"] for r in task["requests"]] == ["failed", "failed"]


def test_long_call_is_202_with_location(any_server: RunningServer) -> None:
    """A long skill answers 202 at once with the Task queued or running and a Location."""
    with any_server.client() as client:
        response = client.post(COUNTDOWN, json={"requests": [{"n": 1000, "interval": 0.05}]})
        task = response.json()
        try:
            assert response.status_code == 202
            assert response.headers["location"] == f"/api/v1/tasks/{task['task_id']}"
            assert task["status"] in {"queued", "running"}
            assert task["finished_at"] is None
            assert client.get(response.headers["location"]).status_code == 200
        finally:
            cancel_quietly(client, task["task_id"])


def test_respond_async_makes_a_quick_call_202(any_server: RunningServer) -> None:
    """Prefer: respond-async answers 202 at once, even for a quick skill; the task then runs."""
    with any_server.client() as client:
        response = client.post(
            ECHO, json={"requests": [{"text": "later"}]}, headers={"Prefer": "respond-async"}
        )
        assert response.status_code == 202
        task = response.json()
        assert task["status"] in {"queued", "running"}
        assert response.headers["location"] == task["links"]["self"]
        done = finished(client, task["task_id"])
    assert done["status"] == "completed"
    assert done["previews"] == [{"type": "text", "text": "later"}]


def test_prefer_wait_makes_a_long_call_200(any_server: RunningServer) -> None:
    """Prefer: wait=5 holds a short long-skill call until it finishes, then answers 200."""
    with any_server.client() as client:
        response = client.post(
            COUNTDOWN,
            json={"requests": [{"n": 2, "interval": 0.05}]},
            headers={"Prefer": "wait=5"},
        )
    assert response.status_code == 200
    task = response.json()
    assert task["status"] == "completed"
    assert task["previews"] == [{"type": "tick", "i": 1}, {"type": "tick", "i": 2}]


def test_prefer_wait_that_runs_out_is_202(any_server: RunningServer) -> None:
    """Prefer: wait=N shorter than the work answers 202 with the running Task after N s."""
    with any_server.client() as client:
        response = client.post(
            COUNTDOWN,
            json={"requests": [{"n": 1000, "interval": 0.05}]},
            headers={"Prefer": "wait=0.1"},
        )
        task = response.json()
        try:
            assert response.status_code == 202
            assert task["status"] in {"queued", "running"}
            assert "location" in response.headers
        finally:
            cancel_quietly(client, task["task_id"])


@pytest.mark.parametrize("backbone", ["memory"])  # the HTTP layer's cap: one backbone is enough
def test_prefer_wait_is_capped_by_max_wait(server_factory: Callable[..., RunningServer]) -> None:
    """Prefer: wait=N above max_wait waits max_wait only, then answers 202."""
    server = server_factory({"max_wait": 0.2})
    with server.client() as client:
        started = time.monotonic()
        response = client.post(
            COUNTDOWN,
            json={"requests": [{"n": 1000, "interval": 0.05}]},
            headers={"Prefer": "wait=600"},
        )
        elapsed = time.monotonic() - started
        cancel_quietly(client, response.json()["task_id"])
    assert response.status_code == 202
    assert elapsed < scaled(10)


@pytest.mark.parametrize("prefer", ["wait=abc", "wait=-1", "wait=nan", "wait=inf"])
def test_bad_prefer_wait_is_400(any_server: RunningServer, prefer: str) -> None:
    """A Prefer: wait that is not a non-negative number answers 400 BAD_REQUEST."""
    with any_server.client() as client:
        response = client.post(ECHO, json={"requests": [{"text": "a"}]}, headers={"Prefer": prefer})
    assert_error(response, 400, "BAD_REQUEST")


def test_unknown_preferences_are_ignored(any_server: RunningServer) -> None:
    """Preferences other than wait and respond-async do not change the answer."""
    with any_server.client() as client:
        response = client.post(
            ECHO, json={"requests": [{"text": "a"}]}, headers={"Prefer": "return=minimal, foo"}
        )
    assert response.status_code == 200


def test_countdown_event_log(any_server: RunningServer) -> None:
    """A countdown of 3 logs 11 events in order, seq 1..11, and last_seq is 11."""
    with any_server.client() as client:
        task_id = start_countdown(client, n=3, interval=0.01)
        task = finished(client, task_id)
    assert task["status"] == "completed"
    assert task["last_seq"] == 11
    events = events_of(any_server, task_id)
    assert [e["seq"] for e in events] == list(range(1, 12))
    assert [e["type"] for e in events] == [
        "task.queued",
        "task.started",
        "request.started",
        *["request.progress", "request.output"] * 3,
        "request.completed",
        "task.completed",
    ]
    assert all(e["task_id"] == task_id for e in events)
    assert [e.get("index") for e in events] == [None, None, *[0] * 8, None]
    assert [e["data"] for e in events if e["type"] == "request.output"] == [
        {"type": "tick", "i": i} for i in (1, 2, 3)
    ]
    progress = [e["data"] for e in events if e["type"] == "request.progress"]
    assert [p["progress"] for p in progress] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert progress[0]["message"] == "tick 1 of 3"
    terminal = events[-1]["data"]
    assert terminal["last_seq"] == 11
    assert terminal["status"] == "completed"
    assert terminal["previews"] == task["previews"]
    times = [e["time"] for e in events]
    assert times == sorted(times)
    assert all(t.endswith("Z") and "." in t for t in times)


def test_progress_is_visible_while_running(any_server: RunningServer) -> None:
    """A running task's request shows its progress and the outputs so far."""
    with any_server.client() as client:
        task_id = start_countdown(client, n=1000, interval=0.01)
        try:
            seen: dict[str, Any] = {}

            def ticked() -> bool:
                seen.update(task_of(client, task_id))
                return len(seen["previews"]) >= 2

            wait_until(ticked)
            request = seen["requests"][0]
            assert seen["status"] == "running"
            assert request["status"] == "running"
            assert 0 < request["progress"] < 1
            assert seen["previews"][:2] == [{"type": "tick", "i": 1}, {"type": "tick", "i": 2}]
            assert seen["last_seq"] >= 7
        finally:
            cancel_quietly(client, task_id)


def test_previews_are_flat_in_request_order(any_server: RunningServer) -> None:
    """previews lists every request's outputs, request by request, whatever order they ran in."""
    with any_server.client() as client:
        response = client.post(
            COUNTDOWN,
            json={"requests": [{"n": 3, "interval": 0.03}, {"n": 2, "interval": 0}]},
            headers={"Prefer": "wait=10"},
        )
    task = response.json()
    assert task["status"] == "completed"
    assert task["previews"] == [
        {"type": "tick", "i": 1},
        {"type": "tick", "i": 2},
        {"type": "tick", "i": 3},
        {"type": "tick", "i": 1},
        {"type": "tick", "i": 2},
    ]
    assert [len(r["output"]) for r in task["requests"]] == [3, 2]
    assert [r["index"] for r in task["requests"]] == [0, 1]


def test_echo_previews_follow_request_order(any_server: RunningServer) -> None:
    """Five echo requests give five previews in the order of the requests."""
    texts = ["one", "two", "three", "four", "five"]
    with any_server.client() as client:
        task = client.post(ECHO, json={"requests": [{"text": t} for t in texts]}).json()
    assert [p["text"] for p in task["previews"]] == texts
    assert task["last_seq"] == 2 + 3 * 5 + 1


def test_metadata_round_trips(any_server: RunningServer) -> None:
    """metadata comes back unchanged on the call's answer, GET and the list."""
    metadata = {"any": "json", "n": [1, 2.5, {"x": None, "ok": True}], "ünï": "cödé"}
    with any_server.client(OTHER_KEY) as client:
        task = client.post(ECHO, json={"requests": [{"text": "a"}], "metadata": metadata}).json()
        fetched = task_of(client, task["task_id"])
        listed = client.get("/api/v1/tasks").json()["items"]
    assert task["metadata"] == fetched["metadata"] == metadata
    assert next(t for t in listed if t["task_id"] == task["task_id"])["metadata"] == metadata


def test_get_matches_the_call_answer(any_server: RunningServer) -> None:
    """GET of a finished task returns the Task the call answered with."""
    with any_server.client() as client:
        task = client.post(ECHO, json={"requests": [{"text": "a"}, {"text": "b"}]}).json()
        assert task_of(client, task["task_id"]) == task


# -- Idempotency-Key ---------------------------------------------------------------------
def test_idempotency_key_replays_a_finished_task(any_server: RunningServer) -> None:
    """The same Idempotency-Key and body return the same finished task with 200, run once."""
    body = {"requests": [{"text": "once"}]}
    headers = {"Idempotency-Key": "idem-finished"}
    with any_server.client(USER_KEY) as client:
        first = client.post(ECHO, json=body, headers=headers)
        second = client.post(ECHO, json=body, headers={**headers, "Prefer": "respond-async"})
        total = client.get("/api/v1/tasks", params={"skill": "echo"}).json()["items"]
    assert first.status_code == second.status_code == 200
    assert first.json()["task_id"] == second.json()["task_id"]
    assert second.json() == first.json()
    assert [t["task_id"] for t in total].count(first.json()["task_id"]) == 1


def test_idempotency_key_replays_a_running_task(any_server: RunningServer) -> None:
    """A replay of a task still running answers 202 with the same task id, Prefer: wait or not."""
    body = {"requests": [{"n": 1000, "interval": 0.05}]}
    headers = {"Idempotency-Key": "idem-running"}
    with any_server.client(USER_KEY) as client:
        first = client.post(COUNTDOWN, json=body, headers=headers)
        try:
            second = client.post(COUNTDOWN, json=body, headers={**headers, "Prefer": "wait=5"})
            assert first.status_code == second.status_code == 202
            assert first.json()["task_id"] == second.json()["task_id"]
            assert second.headers["location"] == first.headers["location"]
        finally:
            cancel_quietly(client, first.json()["task_id"])


def test_idempotency_key_with_another_body_is_409(any_server: RunningServer) -> None:
    """The same Idempotency-Key with a different body answers 409 CONFLICT."""
    headers = {"Idempotency-Key": "idem-conflict"}
    with any_server.client(USER_KEY) as client:
        first = client.post(ECHO, json={"requests": [{"text": "a"}]}, headers=headers)
        other = client.post(ECHO, json={"requests": [{"text": "b"}]}, headers=headers)
        meta = client.post(
            ECHO, json={"requests": [{"text": "a"}], "metadata": {"m": 1}}, headers=headers
        )
        # countdown tolerates the unknown "text" field: the same body, another skill
        skill = client.post(COUNTDOWN, json={"requests": [{"text": "a"}]}, headers=headers)
    assert first.status_code == 200
    assert_error(other, 409, "CONFLICT")
    assert_error(meta, 409, "CONFLICT")
    assert_error(skill, 409, "CONFLICT")


async def test_concurrent_calls_with_one_idempotency_key_share_a_task(
    any_server: RunningServer,
) -> None:
    """Identical calls racing with the same Idempotency-Key all get the one task."""
    body = {"requests": [{"text": "race"}]}
    async with any_server.async_client(USER_KEY) as client:
        answers = await asyncio.gather(
            *(
                client.post(ECHO, json=body, headers={"Idempotency-Key": "idem-race"})
                for _ in range(8)
            )
        )
        listed = (await client.get("/api/v1/tasks", params={"limit": 1000})).json()["items"]
    assert {a.status_code for a in answers} <= {200, 202}
    task_ids = {a.json()["task_id"] for a in answers}
    assert len(task_ids) == 1
    assert [t["task_id"] for t in listed].count(task_ids.pop()) == 1


def test_rejected_call_does_not_use_up_its_idempotency_key(any_server: RunningServer) -> None:
    """A call refused with 422 leaves its Idempotency-Key free for a corrected body."""
    headers = {"Idempotency-Key": "idem-after-422"}
    with any_server.client(USER_KEY) as client:
        refused = client.post(ECHO, json={"requests": [{"text": 1}]}, headers=headers)
        accepted = client.post(ECHO, json={"requests": [{"text": "ok"}]}, headers=headers)
    assert_error(refused, 422, "VALIDATION_ERROR")
    assert accepted.status_code == 200
    assert accepted.json()["previews"] == [{"type": "text", "text": "ok"}]


def test_idempotency_keys_are_per_principal(any_server: RunningServer) -> None:
    """Two principals using the same Idempotency-Key get their own tasks."""
    headers = {"Idempotency-Key": "idem-shared"}
    with any_server.client(USER_KEY) as user, any_server.client(OTHER_KEY) as other:
        mine = user.post(ECHO, json={"requests": [{"text": "a"}]}, headers=headers).json()
        theirs = other.post(ECHO, json={"requests": [{"text": "b"}]}, headers=headers)
    assert theirs.status_code == 200
    assert theirs.json()["task_id"] != mine["task_id"]


@pytest.mark.parametrize("key", ["", "k" * 256, "k" * 60_000])
def test_idempotency_key_too_long_or_empty_is_400(any_server: RunningServer, key: str) -> None:
    """An Idempotency-Key of no or more than 255 characters is 400 and creates no task."""
    with any_server.client(USER_KEY) as client:
        before = client.get("/api/v1/tasks").json()["total"]
        response = client.post(
            ECHO, json={"requests": [{"text": "a"}]}, headers={"Idempotency-Key": key}
        )
        after = client.get("/api/v1/tasks").json()["total"]
    error = assert_error(response, 400, "BAD_REQUEST")
    assert error["details"] == {"field": "Idempotency-Key", "limit": 255}
    assert after == before


def test_idempotency_key_of_255_characters_is_accepted(any_server: RunningServer) -> None:
    """The longest key allowed, 255 characters, replays like any other."""
    headers = {"Idempotency-Key": "k" * 255}
    with any_server.client(USER_KEY) as client:
        first = client.post(ECHO, json={"requests": [{"text": "long"}]}, headers=headers)
        second = client.post(ECHO, json={"requests": [{"text": "long"}]}, headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.json()["task_id"] == second.json()["task_id"]


def test_without_idempotency_key_calls_are_distinct(any_server: RunningServer) -> None:
    """Two identical calls without an Idempotency-Key create two tasks."""
    with any_server.client() as client:
        a = client.post(ECHO, json={"requests": [{"text": "same"}]}).json()
        b = client.post(ECHO, json={"requests": [{"text": "same"}]}).json()
    assert a["task_id"] != b["task_id"]
