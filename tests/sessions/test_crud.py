"""Sessions over HTTP: create, get, list, close; visibility, 404, 410, 409; calls that join."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from skillwire.protocol import new_session_id
from tests.conftest import (
    ADMIN_KEY,
    OTHER_KEY,
    READER_KEY,
    USER_KEY,
    RunningServer,
    start_server,
    wait_until,
)
from tests.server.conftest import (
    UNLIMITED,
    assert_error,
    backbone_settings,
    finished,
    run_on_server,
)

from .conftest import SESSION_BACKBONES
from .helpers import call_in, new_session


@pytest.fixture(scope="module", params=SESSION_BACKBONES)
def server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    running = start_server(
        {
            "heartbeat_interval": 0.5,
            "retention": 3600,
            **UNLIMITED,
            **backbone_settings(request, request.param, db=5),
        }
    )
    yield running
    running.stop()


def test_create_answers_201_with_an_open_session(server: RunningServer) -> None:
    """POST /sessions answers 201 with an open Session carrying the title and metadata."""
    with server.client(USER_KEY) as client:
        response = client.post("/api/v1/sessions", json={"title": "chat", "metadata": {"a": 1}})
    assert response.status_code == 201, response.text
    session = response.json()
    assert session["session_id"].startswith("ses_")
    assert session["title"] == "chat"
    assert session["metadata"] == {"a": 1}
    assert session["status"] == "open"
    assert session["last_seq"] == 0
    assert session["task_ids"] == []
    assert response.headers["location"] == f"/api/v1/sessions/{session['session_id']}"


def test_create_without_a_body_makes_an_untitled_session(server: RunningServer) -> None:
    """An empty POST creates a session with no title."""
    with server.client(USER_KEY) as client:
        response = client.post("/api/v1/sessions")
    assert response.status_code == 201, response.text
    assert response.json()["title"] is None


def test_create_with_a_bad_body_is_422_naming_the_field(server: RunningServer) -> None:
    """A title that is not a string is a VALIDATION_ERROR naming `title`."""
    with server.client(USER_KEY) as client:
        response = client.post("/api/v1/sessions", json={"title": 5})
    assert assert_error(response, 422, "VALIDATION_ERROR")["details"]["field"] == "title"


def test_a_reader_may_not_create_a_session(server: RunningServer) -> None:
    """Creating a session needs the `call` permission (403 otherwise)."""
    with server.client(READER_KEY) as client:
        assert_error(client.post("/api/v1/sessions", json={}), 403, "FORBIDDEN")


def test_another_principal_gets_404_and_admins_see_it(server: RunningServer) -> None:
    """A session is visible to its owner and admins; anyone else gets 404."""
    with server.client(USER_KEY) as client:
        session_id = new_session(client)["session_id"]
    with server.client(OTHER_KEY) as other:
        assert_error(other.get(f"/api/v1/sessions/{session_id}"), 404, "NOT_FOUND")
        assert_error(other.delete(f"/api/v1/sessions/{session_id}"), 404, "NOT_FOUND")
        assert_error(other.get(f"/api/v1/sessions/{session_id}/events"), 404, "NOT_FOUND")
    with server.client(ADMIN_KEY) as admin:
        assert admin.get(f"/api/v1/sessions/{session_id}").status_code == 200


def test_a_call_naming_another_principals_session_is_404(server: RunningServer) -> None:
    """A call may only join the caller's own session: another's answers 404."""
    with server.client(USER_KEY) as client:
        session_id = new_session(client)["session_id"]
    with server.client(OTHER_KEY) as other:
        response = call_in(other, session_id, "echo", [{"text": "x"}])
    assert_error(response, 404, "NOT_FOUND")


def test_an_unknown_id_is_404_and_an_expired_one_410(server: RunningServer) -> None:
    """An id never issued answers 404; an issued one past the retention window answers 410."""
    secret = run_on_server(server, server.runtime.backbone.id_secret())
    old = new_session_id(secret, time.time() - 7200)
    with server.client(USER_KEY) as client:
        assert_error(client.get("/api/v1/sessions/ses_nope"), 404, "NOT_FOUND")
        assert_error(client.get(f"/api/v1/sessions/{old}"), 410, "EXPIRED")
        assert_error(call_in(client, old, "echo", [{"text": "x"}]), 410, "EXPIRED")


def test_list_is_newest_first_paged_and_the_callers_own(server: RunningServer) -> None:
    """GET /sessions lists the caller's sessions newest first, paged; admins see all."""
    with server.client(OTHER_KEY) as client:
        made = [new_session(client, title=f"s{i}")["session_id"] for i in range(3)]
        page = client.get("/api/v1/sessions", params={"limit": 2}).json()
        rest = client.get("/api/v1/sessions", params={"limit": 2, "offset": 2}).json()
    assert [s["session_id"] for s in page["items"]] == made[::-1][:2]
    assert page["total"] == rest["total"] == 3
    assert (page["limit"], page["offset"]) == (2, 0)
    assert [s["session_id"] for s in rest["items"]] == made[:1]
    with server.client(ADMIN_KEY) as admin:
        everyone = admin.get("/api/v1/sessions", params={"limit": 1000}).json()
    assert set(made) <= {s["session_id"] for s in everyone["items"]}
    assert everyone["total"] > 3


def test_calls_join_the_session_and_tasks_show_it(server: RunningServer) -> None:
    """A call with session_id joins: the Task shows it, the Session lists the task."""
    with server.client(USER_KEY) as client:
        session_id = new_session(client)["session_id"]
        first = call_in(client, session_id, "echo", [{"text": "a"}]).json()["task_id"]
        second = call_in(client, session_id, "echo", [{"text": "b"}]).json()["task_id"]
        assert finished(client, first)["session_id"] == session_id
        finished(client, second)
        session = client.get(f"/api/v1/sessions/{session_id}").json()
    assert session["task_ids"] == [first, second]
    assert session["last_seq"] > 0


def test_delete_closes_cancels_running_tasks_and_refuses_later_calls(
    server: RunningServer,
) -> None:
    """DELETE closes the session, cancels its running tasks; later calls and DELETEs get 409."""
    with server.client(USER_KEY) as client:
        session_id = new_session(client)["session_id"]
        response = call_in(client, session_id, "countdown", [{"n": 1000, "interval": 0.05}])
        task_id = response.json()["task_id"]
        closed = client.delete(f"/api/v1/sessions/{session_id}")
        assert closed.status_code == 200, closed.text
        assert closed.json()["status"] == "closed"
        assert finished(client, task_id)["status"] == "cancelled"
        assert_error(call_in(client, session_id, "echo", [{"text": "x"}]), 409, "CONFLICT")
        assert_error(client.delete(f"/api/v1/sessions/{session_id}"), 409, "CONFLICT")
        after = client.get(f"/api/v1/sessions/{session_id}")
    assert after.status_code == 200
    assert after.json()["status"] == "closed"


def test_idempotency_keys_work_inside_a_session(server: RunningServer) -> None:
    """The same key and body in a session replays the task; another session is a 409."""
    with server.client(USER_KEY) as client:
        one = new_session(client)["session_id"]
        two = new_session(client)["session_id"]
        key = {"Idempotency-Key": f"k-{time.time()}"}
        first = call_in(client, one, "echo", [{"text": "a"}], **key).json()["task_id"]
        again = call_in(client, one, "echo", [{"text": "a"}], **key)
        assert again.json()["task_id"] == first
        assert_error(call_in(client, two, "echo", [{"text": "a"}], **key), 409, "CONFLICT")
        session = client.get(f"/api/v1/sessions/{one}").json()
    assert session["task_ids"] == [first]


def test_a_bad_session_id_on_a_call_is_404(server: RunningServer) -> None:
    """A call naming a session that does not exist answers 404, and creates no task."""
    with server.client(USER_KEY) as client:
        before = client.get("/api/v1/tasks").json()["total"]
        assert_error(call_in(client, "ses_x", "echo", [{"text": "a"}]), 404, "NOT_FOUND")
        assert client.get("/api/v1/tasks").json()["total"] == before


def test_an_idempotent_replay_after_the_session_closed_answers_its_task(
    server: RunningServer,
) -> None:
    """A call replayed with its Idempotency-Key after the session was closed answers the
    task it made (like a GET), while a new call there gets 409."""
    with server.client(USER_KEY) as client:
        session_id = new_session(client)["session_id"]
        key = {"Idempotency-Key": f"closed-{time.time()}"}
        first = call_in(client, session_id, "echo", [{"text": "a"}], **key).json()["task_id"]
        finished(client, first)
        assert client.delete(f"/api/v1/sessions/{session_id}").status_code == 200
        replay = call_in(client, session_id, "echo", [{"text": "a"}], **key)
        assert replay.status_code == 200, replay.text
        assert replay.json()["task_id"] == first
        assert_error(call_in(client, session_id, "echo", [{"text": "b"}]), 409, "CONFLICT")


def test_tasks_in_a_session_are_listed_and_filtered_like_any(server: RunningServer) -> None:
    """A session's tasks are in the caller's task list and its status/app/skill filters."""
    with server.client(USER_KEY) as client:
        session_id = new_session(client)["session_id"]
        task_id = call_in(client, session_id, "echo", [{"text": "a"}]).json()["task_id"]
        finished(client, task_id)
        filtered = client.get(
            "/api/v1/tasks",
            params={"status": "completed", "app": "demo", "skill": "echo", "limit": 1000},
        ).json()
        everything = client.get("/api/v1/tasks", params={"limit": 1000}).json()
    assert task_id in [t["task_id"] for t in filtered["items"]]
    assert task_id in [t["task_id"] for t in everything["items"]]


def test_an_idle_session_answers_410_once_past_retention(
    server_factory: Callable[..., RunningServer],
) -> None:
    """A session idle for longer than the retention window answers 410 EXPIRED, not 200."""
    server = server_factory({"retention": 1, **UNLIMITED})
    with server.client(USER_KEY) as client:
        session_id = new_session(client)["session_id"]
        wait_until(lambda: client.get(f"/api/v1/sessions/{session_id}").status_code != 200, 5)
        assert_error(client.get(f"/api/v1/sessions/{session_id}"), 410, "EXPIRED")
