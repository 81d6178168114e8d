"""An Idempotency-Key is taken together with its task: a call whose creation failed took no
key, so its retry creates the task, exactly once (issue 12 item 5)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from redis.asyncio.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError

from skillwire.protocol import format_time, lifecycle
from skillwire.server.backbone import Backbone, Idempotency, MemoryBackbone, WorkItem
from skillwire.server.backbone.redis import RedisBackbone
from tests.conftest import USER_KEY, RedisServer, RunningServer, wait_until
from tests.server.conftest import assert_error, task_of

ECHO = "/api/v1/apps/demo/echo"


class TaskCreationFault:
    """The next MULTI/EXEC that stores a task loses its connection: before Redis ran it
    (``after_running=False``) or after, with the reply lost on the way back."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, after_running: bool) -> None:
        self.armed = True
        self.after_running = after_running
        original = Pipeline.execute
        fault = self

        async def execute(pipe: Pipeline, raise_on_error: bool = True) -> Any:
            stores_task = any(args[0] == "HSET" for args, _ in pipe.command_stack)
            if not (fault.armed and stores_task):
                return await original(pipe, raise_on_error)
            fault.armed = False
            if fault.after_running:
                await original(pipe, raise_on_error)
            else:
                await pipe.reset()
            raise RedisConnectionError("Connection closed by server.")

        monkeypatch.setattr(Pipeline, "execute", execute)


def _echo_tasks(server: RunningServer) -> list[str]:
    with server.client(USER_KEY) as client:
        listed = client.get("/api/v1/tasks", params={"skill": "echo", "limit": 100}).json()
    return [t["task_id"] for t in listed["items"]]


@pytest.mark.parametrize("backbone", ["redis"])
@pytest.mark.parametrize("after_running", [False, True], ids=["before", "after"])
def test_a_retry_after_a_503_creates_the_task_exactly_once(
    server_factory: Callable[..., RunningServer],
    monkeypatch: pytest.MonkeyPatch,
    after_running: bool,
) -> None:
    """The connection dies as the task is stored (before Redis ran it, or with its reply
    lost): 503; the retry with the same key answers with the one task, which completes."""
    server = server_factory()
    fault = TaskCreationFault(monkeypatch, after_running=after_running)
    body = {"requests": [{"text": "retried"}]}
    headers = {"Idempotency-Key": f"idem-fault-{after_running}"}
    with server.client(USER_KEY) as client:
        failed = client.post(ECHO, json=body, headers=headers)
        assert not fault.armed
        assert_error(failed, 503, "SERVICE_UNAVAILABLE")
        retried = client.post(ECHO, json=body, headers={**headers, "Prefer": "wait=5"})
        again = client.post(ECHO, json=body, headers=headers)
        # A replay answers like a GET (whatever its Prefer): 202 while the task still runs.
        assert retried.status_code in (200, 202), retried.text
        task_id = retried.json()["task_id"]
        wait_until(lambda: task_of(client, task_id)["status"] == "completed")
    assert again.json()["task_id"] == task_id
    assert _echo_tasks(server) == [task_id]


async def _create(backbone: Backbone, task_id: str, key: Idempotency) -> tuple[str, str] | None:
    task, first = lifecycle.new_task(task_id, "demo", "echo", 1, {}, format_time(0))
    item = WorkItem(task_id, "demo", "echo", "u", [0], [{"text": "x"}])
    return await backbone.create_task(
        task, first, owner="u", webhook_url=None, work=[item], idempotency=key
    )


@pytest.mark.parametrize("name", ["memory", "redis"])
async def test_a_taken_key_stores_nothing_and_names_the_first_task(
    name: str, request: pytest.FixtureRequest
) -> None:
    """create_task with a key already taken stores no task and returns the first one's id."""
    backbone: Backbone
    if name == "redis":
        redis_server: RedisServer = request.getfixturevalue("redis_server")
        redis_server.flush()
        backbone = RedisBackbone(redis_server.url)
    else:
        backbone = MemoryBackbone()
    await backbone.start()
    try:
        key = Idempotency("u:k", "fp1", 60.0)
        assert await _create(backbone, "tsk_first", key) is None
        assert await _create(backbone, "tsk_second", Idempotency("u:k", "fp2", 60.0)) == (
            "tsk_first",
            "fp1",
        )
        assert await backbone.get_task("tsk_first") is not None
        assert await backbone.get_task("tsk_second") is None
    finally:
        await backbone.close()
