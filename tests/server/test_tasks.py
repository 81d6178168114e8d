"""Tasks: GET with ?wait= long-polling, and the list with its filters and pages."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from tests.conftest import (
    ADMIN_KEY,
    BACKBONES,
    OTHER_KEY,
    USER_KEY,
    RunningServer,
    scaled,
    start_server,
    wait_until,
)
from tests.server.conftest import (
    UNLIMITED,
    assert_error,
    backbone_settings,
    cancel_quietly,
    finished,
    start_countdown,
    task_of,
)

ECHO = "/api/v1/apps/demo/echo"


# -- GET and ?wait= ----------------------------------------------------------------------
def test_wait_returns_once_the_task_finishes(any_server: RunningServer) -> None:
    """GET ?wait=N returns the finished task as soon as it is terminal, well before N."""
    with any_server.client() as client:
        task_id = start_countdown(client, n=3, interval=0.05)
        started = time.monotonic()
        response = client.get(f"/api/v1/tasks/{task_id}", params={"wait": 30})
        elapsed = time.monotonic() - started
    assert response.status_code == 200
    task = response.json()
    assert task["status"] == "completed"
    assert task["last_seq"] == 11
    assert elapsed < scaled(10)  # it did not sit out the full 30 s


def test_wait_that_runs_out_returns_the_running_task(any_server: RunningServer) -> None:
    """GET ?wait=N on a task that outlives N answers 200 with the task still running."""
    with any_server.client() as client:
        task_id = start_countdown(client)
        try:
            response = client.get(f"/api/v1/tasks/{task_id}", params={"wait": "0.1"})
            assert response.status_code == 200
            assert response.json()["status"] in {"queued", "running"}
        finally:
            cancel_quietly(client, task_id)


def test_wait_on_a_finished_task_returns_at_once(any_server: RunningServer) -> None:
    """GET ?wait=60 on a finished task answers at once."""
    with any_server.client() as client:
        task_id = client.post(ECHO, json={"requests": [{"text": "a"}]}).json()["task_id"]
        response = client.get(f"/api/v1/tasks/{task_id}", params={"wait": 60}, timeout=scaled(5))
    assert response.status_code == 200
    assert response.json()["status"] == "completed"


def test_wait_wakes_up_on_cancel(any_server: RunningServer) -> None:
    """A long-poll ends when another client cancels the task."""
    with any_server.client() as client, any_server.client() as canceller:
        task_id = start_countdown(client)
        wait_until(lambda: task_of(client, task_id)["status"] == "running")
        timer = threading.Timer(0.1, lambda: canceller.delete(f"/api/v1/tasks/{task_id}"))
        timer.start()
        response = client.get(f"/api/v1/tasks/{task_id}", params={"wait": 30})
        timer.join()  # the DELETE's answer must be read before its client closes
    assert response.json()["status"] == "cancelled"


@pytest.mark.parametrize(
    "wait", ["abc", "-1", "nan", "inf", "1e999", "--", "+1", " 1", "1_0", "1e1", "\u0661", "\uff11"]
)
def test_bad_wait_is_400(any_server: RunningServer, wait: str) -> None:
    """A ?wait= that is not a non-negative number answers 400 naming the parameter."""
    with any_server.client() as client:
        task_id = client.post(ECHO, json={"requests": [{"text": "a"}]}).json()["task_id"]
        response = client.get(f"/api/v1/tasks/{task_id}", params={"wait": wait})
    error = assert_error(response, 400, "BAD_REQUEST")
    assert error["details"]["field"] == "wait"


@pytest.mark.parametrize("wait", ["0", "", "0.0"])
def test_zero_wait_is_a_plain_get(any_server: RunningServer, wait: str) -> None:
    """?wait=0 (or empty) answers at once like a plain GET."""
    with any_server.client() as client:
        task_id = start_countdown(client)
        try:
            response = client.get(f"/api/v1/tasks/{task_id}", params={"wait": wait})
            assert response.status_code == 200
            assert response.json()["status"] in {"queued", "running"}
        finally:
            cancel_quietly(client, task_id)


# -- list --------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=BACKBONES)
def listed(request: pytest.FixtureRequest) -> Iterator[tuple[RunningServer, list[str]]]:
    """A fresh server where USER made three echo tasks, one demo/fail and one countdown."""
    server = start_server({**UNLIMITED, **backbone_settings(request, request.param, db=2)})
    try:
        with server.client(USER_KEY) as client:
            ids = [
                client.post(ECHO, json={"requests": [{"text": str(i)}]}).json()["task_id"]
                for i in range(3)
            ]
            failed = client.post("/api/v1/apps/demo/fail", json={"requests": [{"message": "x"}]})
            ids.append(failed.json()["task_id"])
            ids.append(start_countdown(client, n=1, interval=0))
            finished(client, ids[-1])
        yield server, ids
    finally:
        server.stop()


def test_list_is_newest_first_with_total(listed: tuple[RunningServer, list[str]]) -> None:
    """The list holds the caller's tasks newest first, with total, limit and offset."""
    server, ids = listed
    with server.client(USER_KEY) as client:
        body = client.get("/api/v1/tasks").json()
    assert [t["task_id"] for t in body["items"]] == ids[::-1]
    assert (body["total"], body["limit"], body["offset"]) == (5, 50, 0)
    assert body["items"][0]["previews"] == [{"type": "tick", "i": 1}]


def test_list_pagination(listed: tuple[RunningServer, list[str]]) -> None:
    """limit and offset page through the list; total counts every match."""
    server, ids = listed
    ids = ids[::-1]
    with server.client(USER_KEY) as client:
        pages = [
            client.get("/api/v1/tasks", params={"limit": 2, "offset": offset}).json()
            for offset in (0, 2, 4, 6)
        ]
    assert [[t["task_id"] for t in p["items"]] for p in pages] == [ids[0:2], ids[2:4], ids[4:], []]
    assert [p["total"] for p in pages] == [5, 5, 5, 5]
    assert [(p["limit"], p["offset"]) for p in pages] == [(2, 0), (2, 2), (2, 4), (2, 6)]


def test_list_offset_past_every_task_is_empty_and_a_huge_one_is_400(
    listed: tuple[RunningServer, list[str]],
) -> None:
    """An offset up to 2**53 - 1 answers an empty page (on Redis too); a larger one is a 400
    naming it, never a backbone error."""
    server, _ = listed
    with server.client(USER_KEY) as client:
        far = client.get("/api/v1/tasks", params={"offset": 2**53 - 1})
        huge = client.get("/api/v1/tasks", params={"offset": 10**30})
    assert far.status_code == 200, far.text
    assert (far.json()["items"], far.json()["total"], far.json()["offset"]) == ([], 5, 2**53 - 1)
    assert assert_error(huge, 400, "BAD_REQUEST")["details"] == {"field": "offset"}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "failed"}, [3]),
        ({"status": "completed"}, [4, 2, 1, 0]),
        ({"status": "running"}, []),
        ({"skill": "echo"}, [2, 1, 0]),
        ({"skill": "countdown"}, [4]),
        ({"app": "demo"}, [4, 3, 2, 1, 0]),
        ({"app": "other"}, []),
        ({"app": "demo", "skill": "fail", "status": "failed"}, [3]),
        ({"app": "demo", "skill": "fail", "status": "completed"}, []),
        ({"status": "", "app": "", "skill": ""}, [4, 3, 2, 1, 0]),
    ],
)
def test_list_filters(
    listed: tuple[RunningServer, list[str]], params: dict[str, str], expected: list[int]
) -> None:
    """status, app and skill filter the list, and total counts the filtered tasks."""
    server, ids = listed
    with server.client(USER_KEY) as client:
        body = client.get("/api/v1/tasks", params=params).json()
    assert [t["task_id"] for t in body["items"]] == [ids[i] for i in expected]
    assert body["total"] == len(expected)


def test_list_of_another_user_is_empty(listed: tuple[RunningServer, list[str]]) -> None:
    """Another user's list holds none of these tasks; the admin's holds them all."""
    server, ids = listed
    with server.client(OTHER_KEY) as other, server.client(ADMIN_KEY) as admin:
        assert other.get("/api/v1/tasks").json() == {
            "items": [],
            "total": 0,
            "limit": 50,
            "offset": 0,
        }
        assert [t["task_id"] for t in admin.get("/api/v1/tasks").json()["items"]] == ids[::-1]


def test_list_filter_by_running_status(any_server: RunningServer) -> None:
    """status=running lists a task while it runs."""
    with any_server.client(USER_KEY) as client:
        task_id = start_countdown(client)
        try:
            wait_until(lambda: task_of(client, task_id)["status"] == "running")
            items = client.get("/api/v1/tasks", params={"status": "running"}).json()["items"]
            assert task_id in [t["task_id"] for t in items]
        finally:
            cancel_quietly(client, task_id)


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "abc"},
        {"limit": "0"},
        {"limit": "-1"},
        {"limit": "1001"},
        {"limit": "2.5"},
        {"limit": "+5"},
        {"limit": "\uff15"},  # FULLWIDTH DIGIT FIVE
        {"offset": "\u0661"},  # ARABIC-INDIC DIGIT ONE
        {"offset": "-3"},
        {"offset": "x"},
        {"status": "bogus"},
        {"status": "COMPLETED"},
    ],
)
def test_bad_list_parameter_is_400(any_server: RunningServer, params: dict[str, str]) -> None:
    """A malformed limit, offset or status answers 400 naming the parameter."""
    with any_server.client() as client:
        response = client.get("/api/v1/tasks", params=params)
    error = assert_error(response, 400, "BAD_REQUEST")
    assert error["details"]["field"] == next(iter(params))


def test_bad_status_lists_the_allowed_values(any_server: RunningServer) -> None:
    """The 400 for a bad status lists the statuses there are."""
    with any_server.client() as client:
        error = assert_error(client.get("/api/v1/tasks?status=nope"), 400, "BAD_REQUEST")
    assert set(error["details"]["allowed"]) == {
        "queued",
        "running",
        "completed",
        "partial",
        "failed",
        "cancelled",
    }
