"""Task trees: ctx.call creates a child task, awaits or iterates it; cancel cascades; depth."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import TEST_KEYS, USER_KEY, RunningServer, start_server, wait_until
from tests.server.conftest import UNLIMITED, backbone_settings, events_of, finished, task_of

from .conftest import SESSION_BACKBONES
from .helpers import new_session, session_log
from .tree_apps import tree

TREE_KEY = "sk_test_tree_only"


@pytest.fixture(scope="module", params=SESSION_BACKBONES)
def server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    running = start_server(
        {
            **UNLIMITED,
            "keys": [
                *TEST_KEYS,
                {"name": "treeonly", "key": TREE_KEY, "role": "user", "scopes": ["tree.*"]},
            ],
            **backbone_settings(request, request.param, db=6),
        },
        apps=[tree],
    )
    yield running
    running.stop()


def call(client: httpx.Client, skill: str, request: dict[str, Any], **body: Any) -> str:
    response = client.post(
        f"/api/v1/apps/tree/{skill}",
        json={"requests": [request], **body},
        headers={"Prefer": "respond-async"},
    )
    assert response.status_code == 202, response.text
    task_id: str = response.json()["task_id"]
    return task_id


def test_a_child_task_joins_the_parents_session_and_tree(server: RunningServer) -> None:
    """ctx.call makes a child (same owner and session, parent_task_id); the parent's log has
    request.call naming it, its Task lists it in children, and it returns the final Task."""
    with server.client(USER_KEY) as client:
        session_id = new_session(client)["session_id"]
        request = {"app": "demo", "skill": "echo", "requests": [{"text": "hi"}]}
        parent_id = call(client, "parent", request, session_id=session_id)
        parent = finished(client, parent_id)
        assert parent["status"] == "completed", parent
        (output,) = parent["previews"]
        child = task_of(client, output["child"])
    assert output["status"] == "completed"
    assert output["previews"] == [{"type": "text", "text": "hi"}]
    assert child["parent_task_id"] == parent_id
    assert child["session_id"] == session_id
    assert parent["children"] == [child["task_id"]]
    calls = [e for e in events_of(server, parent_id) if e["type"] == "request.call"]
    assert [e["data"] for e in calls] == [
        {"task_id": child["task_id"], "app": "demo", "skill": "echo"}
    ]
    joined = [e["data"] for e in session_log(server, session_id) if e["type"] == "session.task"]
    assert joined == [
        {"task_id": parent_id, "app": "tree", "skill": "parent", "parent_task_id": None},
        {"task_id": child["task_id"], "app": "demo", "skill": "echo", "parent_task_id": parent_id},
    ]


def test_a_childs_failure_is_the_callers_to_handle(server: RunningServer) -> None:
    """A child that fails returns its failed Task to the caller, which completes."""
    with server.client(USER_KEY) as client:
        request = {"app": "demo", "skill": "fail", "requests": [{"message": "no"}]}
        parent = finished(client, call(client, "parent", request))
    assert parent["status"] == "completed"
    assert parent["previews"][0]["status"] == "failed"


def test_iterating_a_child_yields_its_events_to_the_terminal_one(server: RunningServer) -> None:
    """async for over ctx.call yields the child's events in order, ending with its terminal."""
    with server.client(USER_KEY) as client:
        parent = finished(client, call(client, "iterate", {"n": 3}))
    types = parent["previews"][0]["types"]
    assert types[0] == "task.queued"
    assert types[-1] == "task.completed"
    assert types.count("request.output") == 3


def test_calls_nest_at_most_max_depth(server: RunningServer) -> None:
    """A tree deeper than 8 is refused with a SkillError at the 8th level, clearly."""
    with server.client(USER_KEY) as client:
        root = finished(client, call(client, "nest", {"depth": 10}), wait=30)
        levels = 1
        output = root["previews"][0]
        while "child" in output:
            levels += 1
            output = finished(client, output["child"])["previews"][0]
    assert levels == 8
    assert output["refused"] == "VALIDATION_ERROR"
    assert "8" in output["message"]


def test_a_child_call_is_checked_against_the_principals_scopes(server: RunningServer) -> None:
    """A key scoped to tree.* calling demo/echo from a skill is refused FORBIDDEN."""
    with server.client(TREE_KEY) as client:
        parent = finished(client, call(client, "forbidden", {}))
    assert parent["previews"][0] == {"refused": "FORBIDDEN"}
    assert parent["children"] == []


def test_cancelling_a_parent_cancels_its_child(server: RunningServer) -> None:
    """DELETE of a parent awaiting a long child cancels the child too."""
    with server.client(USER_KEY) as client:
        request = {"app": "demo", "skill": "countdown", "requests": [{"n": 1000, "interval": 0.05}]}
        parent_id = call(client, "parent", request)
        wait_until(lambda: task_of(client, parent_id)["children"] != [], timeout=10)
        (child_id,) = task_of(client, parent_id)["children"]
        wait_until(lambda: task_of(client, child_id)["status"] == "running", timeout=10)
        assert client.delete(f"/api/v1/tasks/{parent_id}").status_code == 200
        child = finished(client, child_id)
    assert child["status"] == "cancelled"
