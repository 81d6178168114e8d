"""The REST methods of AsyncClient and Client against a real server."""

from __future__ import annotations

import pytest

from skillwire.client import (
    AppSkills,
    AsyncClient,
    Client,
    Conflict,
    Skill,
    SkillMode,
    Task,
    TaskStatus,
)
from tests.conftest import RunningServer


async def test_apps_lists_the_demo_skills(client: AsyncClient) -> None:
    """apps() returns typed AppSkills with the demo app's three skills."""
    apps = await client.apps()
    assert all(isinstance(app, AppSkills) for app in apps)
    demo = next(app for app in apps if app.app == "demo")
    assert {s.skill for s in demo.skills} >= {"echo", "countdown", "fail"}


async def test_skill_describes_one_skill(client: AsyncClient) -> None:
    """skill() returns the Skill with its mode and input schema."""
    skill = await client.skill("demo", "countdown")
    assert isinstance(skill, Skill)
    assert skill.mode is SkillMode.LONG
    assert "n" in skill.input_schema["properties"]


async def test_call_quick_skill_waits_for_the_result(client: AsyncClient) -> None:
    """A quick call with the server's default wait returns the finished Task."""
    task = await client.call("demo", "echo", [{"text": "a"}, {"text": "b"}])
    assert task.status is TaskStatus.COMPLETED
    assert task.previews == [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert task.last_seq > 1


async def test_call_with_wait_zero_returns_at_once(client: AsyncClient) -> None:
    """wait=0 sends Prefer: respond-async: a long task comes back unfinished."""
    task = await client.call("demo", "countdown", [{"n": 50, "interval": 0.05}], wait=0)
    assert task.status in (TaskStatus.QUEUED, TaskStatus.RUNNING)
    await client.cancel(task.task_id)


async def test_call_with_wait_waits_for_a_long_task(client: AsyncClient) -> None:
    """wait=N sends Prefer: wait=N: a short long-mode task comes back finished."""
    task = await client.call("demo", "countdown", [{"n": 3, "interval": 0.01}], wait=10)
    assert task.status is TaskStatus.COMPLETED
    assert [p["i"] for p in task.previews] == [1, 2, 3]


async def test_call_reports_partial_and_failed(client: AsyncClient) -> None:
    """A call's Task says partial or failed; the client does not raise for that."""
    partial = await client.call("demo", "echo", [{"text": "ok"}, {"text": "x", "fail": True}])
    assert partial.status is TaskStatus.PARTIAL
    assert partial.requests[1].error is not None
    assert partial.requests[1].error.code == "SKILL_ERROR"
    failed = await client.call("demo", "fail", [{"message": "boom"}])
    assert failed.status is TaskStatus.FAILED


async def test_call_sends_metadata(client: AsyncClient) -> None:
    """metadata is stored on the Task."""
    task = await client.call("demo", "echo", [{"text": "m"}], metadata={"trace": "abc"})
    assert task.metadata == {"trace": "abc"}


async def test_idempotency_key_returns_the_same_task(client: AsyncClient) -> None:
    """The same Idempotency-Key and body return the same task; another body is a Conflict."""
    first = await client.call("demo", "echo", [{"text": "once"}], idempotency_key="key-rest-1")
    again = await client.call("demo", "echo", [{"text": "once"}], idempotency_key="key-rest-1")
    assert again.task_id == first.task_id
    with pytest.raises(Conflict):
        await client.call("demo", "echo", [{"text": "other"}], idempotency_key="key-rest-1")


async def test_generated_idempotency_keys_differ_per_call(client: AsyncClient) -> None:
    """Two identical calls without a key are two tasks (each gets its own generated key)."""
    one = await client.call("demo", "echo", [{"text": "same"}])
    two = await client.call("demo", "echo", [{"text": "same"}])
    assert one.task_id != two.task_id


async def test_task_and_task_wait(client: AsyncClient) -> None:
    """task() reads a task; task(wait=N) long-polls until it is finished."""
    started = await client.call("demo", "countdown", [{"n": 5, "interval": 0.02}], wait=0)
    now = await client.task(started.task_id)
    assert now.task_id == started.task_id
    done = await client.task(started.task_id, wait=10)
    assert done.status is TaskStatus.COMPLETED
    assert isinstance(done, Task)


async def test_tasks_filters_and_pages(client: AsyncClient) -> None:
    """tasks() passes filters, limit and offset; pages hold the caller's tasks, newest first."""
    for i in range(3):
        await client.call("demo", "echo", [{"text": f"page-{i}"}])
    page = await client.tasks(app="demo", skill="echo", status="completed", limit=2)
    assert page.limit == 2
    assert len(page.items) == 2
    assert page.total >= 3
    assert all(t.skill == "echo" and t.status is TaskStatus.COMPLETED for t in page.items)
    assert page.items[0].created_at >= page.items[1].created_at
    second = await client.tasks(app="demo", skill="echo", status="completed", limit=2, offset=2)
    assert second.offset == 2
    assert not {t.task_id for t in second.items} & {t.task_id for t in page.items}


async def test_iter_tasks_walks_every_page(client: AsyncClient) -> None:
    """iter_tasks() yields every task of the listing once, across pages."""
    made = {(await client.call("demo", "echo", [{"text": f"it-{i}"}])).task_id for i in range(5)}
    seen = [t.task_id async for t in client.iter_tasks(skill="echo", page_size=2)]
    assert made <= set(seen)
    assert len(seen) == len(set(seen))
    total = (await client.tasks(skill="echo", limit=1)).total
    assert len(seen) == total


async def test_cancel_cancels_and_conflicts_when_finished(client: AsyncClient) -> None:
    """cancel() returns the cancelled Task; cancelling it again raises Conflict."""
    task = await client.call("demo", "countdown", [{"n": 100, "interval": 0.05}], wait=0)
    cancelled = await client.cancel(task.task_id)
    assert cancelled.status is TaskStatus.CANCELLED
    with pytest.raises(Conflict) as info:
        await client.cancel(task.task_id)
    assert info.value.status == 409
    assert info.value.request_id


def test_sync_client_has_the_same_methods(sync_client: Client) -> None:
    """Client mirrors AsyncClient: apps, skill, call, task, tasks, iter_tasks, cancel."""
    assert any(app.app == "demo" for app in sync_client.apps())
    assert sync_client.skill("demo", "echo").mode is SkillMode.QUICK
    task = sync_client.call("demo", "echo", [{"text": "sync"}])
    assert task.status is TaskStatus.COMPLETED
    assert sync_client.task(task.task_id).task_id == task.task_id
    assert sync_client.tasks(limit=1).items
    assert task.task_id in {t.task_id for t in sync_client.iter_tasks(page_size=50)}
    long = sync_client.call("demo", "countdown", [{"n": 100, "interval": 0.05}], wait=0)
    assert sync_client.cancel(long.task_id).status is TaskStatus.CANCELLED
    assert sync_client.task(long.task_id, wait=5).status is TaskStatus.CANCELLED


def test_sync_and_async_clients_expose_the_same_methods() -> None:
    """Every public method of AsyncClient exists on Client."""

    def public(cls: type) -> set[str]:
        return {n for n in vars(cls) if not n.startswith("_") and callable(getattr(cls, n))}

    assert public(AsyncClient) - {"aclose"} == public(Client) - {"close"}


def test_sync_client_closes_its_loop(shared_server: RunningServer) -> None:
    """close() stops the client's private event loop thread; closing twice is harmless."""
    sync = Client(shared_server.url, api_key="x")
    sync.close()
    sync.close()
    assert sync._portal.closed
