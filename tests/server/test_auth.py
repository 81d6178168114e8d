"""The auth matrix over HTTP: keys, roles, scopes, and who sees which task."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import (
    ADMIN_KEY,
    OTHER_KEY,
    READER_KEY,
    SCOPED_KEY,
    USER_KEY,
    RunningServer,
)
from tests.server.conftest import (
    assert_error,
    cancel_quietly,
    finished,
    start_countdown,
    task_of,
)

ECHO = "/api/v1/apps/demo/echo"
COUNTDOWN = "/api/v1/apps/demo/countdown"
ENDPOINTS: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/api/v1/apps", {}),
    ("GET", "/api/v1/apps/demo/echo", {}),
    ("POST", ECHO, {"json": {"requests": [{"text": "a"}]}}),
    ("GET", "/api/v1/tasks", {}),
    ("GET", "/api/v1/tasks/tsk_whatever", {}),
    ("DELETE", "/api/v1/tasks/tsk_whatever", {}),
    # No route, or not this method: still 401 first, so a stranger cannot map the routes.
    ("GET", "/api/v1/nope", {}),
    ("GET", "/api/v1", {}),
    ("GET", "/api/v1/", {}),
    ("GET", "/api/v1/tasks/x/y/z", {}),
    ("POST", "/api/v1/webhooks/nope", {}),
    ("PUT", "/api/v1/tasks", {}),
    ("PATCH", ECHO, {}),
]


# -- 401 ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("method", "path", "kwargs"), ENDPOINTS)
def test_no_key_is_401(
    shared_server: RunningServer, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    """Without credentials every /api/v1 endpoint answers 401 with WWW-Authenticate: Bearer."""
    with shared_server.client(None) as client:
        response = client.request(method, path, **kwargs)
    assert_error(response, 401, "UNAUTHORIZED")
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer sk_wrong"},
        {"X-API-Key": "sk_wrong"},
        {"Authorization": f"Bearer {ADMIN_KEY}x"},
        {"Authorization": f"Basic {ADMIN_KEY}"},
        {"Authorization": "Bearer"},
        {"Authorization": ADMIN_KEY},
        {"X-API-Key": ""},
    ],
)
@pytest.mark.parametrize(("method", "path", "kwargs"), ENDPOINTS)
def test_bad_key_is_401(
    shared_server: RunningServer,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    headers: dict[str, str],
) -> None:
    """A wrong, malformed or empty credential answers 401 UNAUTHORIZED."""
    with shared_server.client(None) as client:
        response = client.request(method, path, headers=headers, **kwargs)
    assert_error(response, 401, "UNAUTHORIZED")
    assert response.headers["www-authenticate"] == "Bearer"


def test_bad_bearer_is_not_rescued_by_x_api_key(shared_server: RunningServer) -> None:
    """A wrong Authorization header is refused even if X-API-Key holds a good key."""
    with shared_server.client(None) as client:
        response = client.get(
            "/api/v1/apps", headers={"Authorization": "Bearer nope", "X-API-Key": ADMIN_KEY}
        )
    assert_error(response, 401, "UNAUTHORIZED")


@pytest.mark.parametrize("key", [ADMIN_KEY, USER_KEY])
def test_bearer_and_x_api_key_both_work(shared_server: RunningServer, key: str) -> None:
    """The same key is accepted as Authorization: Bearer and as X-API-Key."""
    with shared_server.client(None) as client:
        bearer = client.get("/api/v1/apps", headers={"Authorization": f"Bearer {key}"})
        lower = client.get("/api/v1/apps", headers={"Authorization": f"bearer {key}"})
        header = client.get("/api/v1/apps", headers={"X-API-Key": key})
    assert bearer.status_code == lower.status_code == header.status_code == 200
    assert bearer.json() == header.json()


def test_call_with_x_api_key(shared_server: RunningServer) -> None:
    """A call authenticated with X-API-Key runs and its task belongs to that key."""
    with shared_server.client(None) as client:
        response = client.post(
            ECHO, json={"requests": [{"text": "hi"}]}, headers={"X-API-Key": USER_KEY}
        )
        task = response.json()
        assert task["status"] == "completed"
    with shared_server.client(USER_KEY) as client:
        assert task_of(client, task["task_id"])["status"] == "completed"


def test_keys_are_never_logged(
    shared_server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Neither a good nor a bad key reaches a log record; the principal's name does."""
    caplog.set_level(logging.DEBUG)
    with shared_server.client(USER_KEY) as client:
        client.post(ECHO, json={"requests": [{"text": "a"}]}, headers={"X-Request-ID": "log-1"})
    with shared_server.client("sk_bad_key_value") as client:
        client.get("/api/v1/apps")
    everything = caplog.text + "".join(repr(vars(record)) for record in caplog.records)
    assert USER_KEY not in everything
    assert "sk_bad_key_value" not in everything
    access = [r for r in caplog.records if "log-1" in repr(vars(r))]
    assert access, "the request was logged with its request id"
    assert any("'user'" in repr(vars(r)) or "=user" in r.getMessage() for r in access)


# -- 403 ---------------------------------------------------------------------------------
def test_reader_may_read_but_not_call(shared_server: RunningServer) -> None:
    """A role with only "read" lists skills and tasks but gets 403 FORBIDDEN on a call."""
    with shared_server.client(READER_KEY) as client:
        assert client.get("/api/v1/apps").status_code == 200
        assert client.get("/api/v1/apps/demo/echo").status_code == 200
        assert client.get("/api/v1/tasks").status_code == 200
        response = client.post(ECHO, json={"requests": [{"text": "a"}]})
    error = assert_error(response, 403, "FORBIDDEN")
    assert error["details"]["permission"] == "call"
    assert "www-authenticate" not in response.headers


def test_reader_may_not_cancel(shared_server: RunningServer) -> None:
    """A role without "cancel" gets 403 on DELETE, before the task is even looked up."""
    with shared_server.client(READER_KEY) as client:
        response = client.delete("/api/v1/tasks/tsk_whatever")
    error = assert_error(response, 403, "FORBIDDEN")
    assert error["details"]["permission"] == "cancel"


def test_scoped_key_may_call_only_its_skills(shared_server: RunningServer) -> None:
    """A key scoped to demo.echo calls echo but gets 403 on demo/countdown and demo/fail."""
    with shared_server.client(SCOPED_KEY) as client:
        allowed = client.post(ECHO, json={"requests": [{"text": "a"}]})
        countdown = client.post(COUNTDOWN, json={"requests": [{"n": 1}]})
        fail = client.post("/api/v1/apps/demo/fail", json={"requests": [{"message": "x"}]})
        listed = client.get("/api/v1/tasks")
    assert allowed.status_code == 200
    assert allowed.json()["status"] == "completed"
    error = assert_error(countdown, 403, "FORBIDDEN")
    assert error["details"]["skill"] == "demo.countdown"
    assert_error(fail, 403, "FORBIDDEN")
    assert [t["skill"] for t in listed.json()["items"]] == ["echo"]  # nothing else was created


@pytest.mark.parametrize("backbone", ["memory"])  # auth happens before any backbone call
def test_roles_config_changes_permissions(server_factory: Callable[..., RunningServer]) -> None:
    """A role named under [roles] gets exactly the listed permissions: user without "call"."""
    server = server_factory({"roles": {"user": ["read"], "reader": ["read"]}})
    with server.client(USER_KEY) as client:
        assert client.get("/api/v1/apps").status_code == 200
        response = client.post(ECHO, json={"requests": [{"text": "a"}]})
    assert_error(response, 403, "FORBIDDEN")
    with server.client(ADMIN_KEY) as client:  # admin keeps every permission
        assert client.post(ECHO, json={"requests": [{"text": "a"}]}).status_code == 200


@pytest.mark.parametrize("backbone", ["memory"])
def test_role_without_read_cannot_list(server_factory: Callable[..., RunningServer]) -> None:
    """A role with "call" only may call but not read tasks or skills."""
    server = server_factory(
        {
            "keys": [{"name": "caller", "key": "sk_caller", "role": "caller"}],
            "roles": {"caller": ["call"]},
        }
    )
    with server.client("sk_caller") as client:
        called = client.post(ECHO, json={"requests": [{"text": "a"}]})
        read = client.get(f"/api/v1/tasks/{called.json()['task_id']}")
        listed = client.get("/api/v1/apps")
    assert called.status_code == 200
    assert_error(read, 403, "FORBIDDEN")
    assert_error(listed, 403, "FORBIDDEN")


# -- visibility --------------------------------------------------------------------------
def test_another_principals_task_is_404(any_server: RunningServer) -> None:
    """A task is 404 to another user on GET, ?wait and DELETE, and the DELETE cancels nothing."""
    with any_server.client(USER_KEY) as owner, any_server.client(OTHER_KEY) as other:
        task_id = start_countdown(owner)
        try:
            assert_error(other.get(f"/api/v1/tasks/{task_id}"), 404, "NOT_FOUND")
            assert_error(other.get(f"/api/v1/tasks/{task_id}?wait=0.1"), 404, "NOT_FOUND")
            assert_error(other.delete(f"/api/v1/tasks/{task_id}"), 404, "NOT_FOUND")
            assert task_of(owner, task_id)["status"] in {"queued", "running"}
        finally:
            cancel_quietly(owner, task_id)


def test_another_principals_finished_task_is_404(any_server: RunningServer) -> None:
    """A finished task is 404 to another user (never 409 on DELETE, which would leak it)."""
    with any_server.client(USER_KEY) as owner, any_server.client(OTHER_KEY) as other:
        task_id = owner.post(ECHO, json={"requests": [{"text": "a"}]}).json()["task_id"]
        assert_error(other.get(f"/api/v1/tasks/{task_id}"), 404, "NOT_FOUND")
        assert_error(other.delete(f"/api/v1/tasks/{task_id}"), 404, "NOT_FOUND")
        assert_error(owner.delete(f"/api/v1/tasks/{task_id}"), 409, "CONFLICT")


def test_reader_cannot_see_users_task(any_server: RunningServer) -> None:
    """A reader (another principal) gets 404 on a user's task."""
    with any_server.client(USER_KEY) as owner, any_server.client(READER_KEY) as reader:
        task_id = owner.post(ECHO, json={"requests": [{"text": "a"}]}).json()["task_id"]
        assert_error(reader.get(f"/api/v1/tasks/{task_id}"), 404, "NOT_FOUND")


def test_admin_sees_and_cancels_every_task(any_server: RunningServer) -> None:
    """An admin reads and cancels a user's task."""
    with any_server.client(USER_KEY) as owner, any_server.client(ADMIN_KEY) as admin:
        task_id = start_countdown(owner)
        assert task_of(admin, task_id)["task_id"] == task_id
        cancelled = admin.delete(f"/api/v1/tasks/{task_id}")
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "cancelled"
        assert finished(owner, task_id)["status"] == "cancelled"


def test_lists_show_own_tasks_and_admin_sees_all(any_server: RunningServer) -> None:
    """A user's list holds only their own tasks; an admin's list holds everyone's."""
    ids: dict[str, set[str]] = {}
    for name, key in [("user", USER_KEY), ("other", OTHER_KEY), ("admin", ADMIN_KEY)]:
        with any_server.client(key) as client:
            ids[name] = {
                client.post(ECHO, json={"requests": [{"text": f"{name}{i}"}]}).json()["task_id"]
                for i in range(2)
            }
    listed: dict[str, set[str]] = {}
    for name, key in [("user", USER_KEY), ("other", OTHER_KEY), ("admin", ADMIN_KEY)]:
        with any_server.client(key) as client:
            body = client.get("/api/v1/tasks", params={"limit": 1000}).json()
        listed[name] = {t["task_id"] for t in body["items"]}
        assert body["total"] == len(body["items"])
    assert ids["user"] <= listed["user"]
    assert not listed["user"] & (ids["other"] | ids["admin"])
    assert ids["other"] <= listed["other"]
    assert not listed["other"] & (ids["user"] | ids["admin"])
    assert not listed["user"] & listed["other"]
    assert listed["user"] | listed["other"] | ids["admin"] <= listed["admin"]


# -- health ------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/health", "/healthz", "/readyz"])
def test_health_endpoints_need_no_key(shared_server: RunningServer, path: str) -> None:
    """Liveness and readiness answer 200 without credentials, and with a bad key too."""
    with shared_server.client(None) as client:
        plain = client.get(path)
        bad = client.get(path, headers={"Authorization": "Bearer nope"})
    assert plain.status_code == bad.status_code == 200
    if path == "/readyz":
        assert plain.json() == {"status": "ok", "checks": {"backbone": "ok"}}
    else:
        assert plain.json() == {"status": "ok"}
