"""TaskService owns what every channel's call and cancel must do: authorisation, the metric,
the audit line; a channel only names itself."""

from __future__ import annotations

import asyncio
import logging

import pytest

from skillwire.protocol import CallBody, Forbidden, NotFound
from skillwire.server._config import Config, KeyConfig
from skillwire.server._runtime import Runtime
from tests.conftest import scaled

KEYS = [
    KeyConfig(name="user", role="user", key="sk_user"),
    KeyConfig(name="echoer", role="user", key="sk_echo", scopes=["demo.echo"]),
    KeyConfig(name="reader", role="reader", key="sk_reader"),
]


@pytest.fixture
def runtime() -> Runtime:
    return Runtime.build(Config(keys=KEYS, roles={"reader": ["read"]}, workers=False), [])


def _principal(runtime: Runtime, key: str):  # type: ignore[no-untyped-def]
    principal = runtime.keys.lookup(key)
    assert principal is not None
    return principal


def _sample(runtime: Runtime, name: str, labels: dict[str, str]) -> float:
    value = runtime.metrics.registry.get_sample_value(name, labels)
    return value or 0.0


def _audit_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [r.fields for r in caplog.records if r.name == "skillwire.audit"]  # type: ignore[attr-defined]


async def test_call_and_cancel_count_and_audit_with_the_channel_named(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """One call and one cancel through TaskService: one calls_total and one cancelled count,
    and one audit line each, labelled with the channel the caller named."""
    caplog.set_level(logging.INFO, logger="skillwire.audit")
    user = _principal(runtime, "sk_user")
    spec = await runtime.tasks.callable_skill(user, "demo", "echo")
    body = CallBody(requests=[{"text": "hi"}])
    result = await runtime.tasks.call(user, spec, body, channel="ws")
    await runtime.tasks.cancel(user, result.task.task_id, channel="sse")

    calls = {"app": "demo", "skill": "echo", "channel": "ws"}
    assert _sample(runtime, "skillwire_calls_total", calls) == 1
    finished = {"app": "demo", "skill": "echo", "status": "cancelled"}
    assert _sample(runtime, "skillwire_tasks_finished_total", finished) == 1
    task_id = result.task.task_id
    assert _audit_lines(caplog) == [
        {
            "audit": "call",
            "principal": "user",
            "task_id": task_id,
            "app": "demo",
            "skill": "echo",
            "requests": 1,
            "channel": "ws",
        },
        {"audit": "cancel", "principal": "user", "task_id": task_id, "channel": "sse"},
    ]


async def test_replayed_call_is_neither_counted_nor_audited_again(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """A call replayed by its Idempotency-Key answers the first task and adds no count or line."""
    caplog.set_level(logging.INFO, logger="skillwire.audit")
    user = _principal(runtime, "sk_user")
    spec = await runtime.tasks.callable_skill(user, "demo", "echo")
    body = CallBody(requests=[{"text": "hi"}])
    first = await runtime.tasks.call(user, spec, body, channel="rest", idempotency_key="k1")
    again = await runtime.tasks.call(user, spec, body, channel="rest", idempotency_key="k1")
    assert again.replayed and again.task.task_id == first.task.task_id
    calls = {"app": "demo", "skill": "echo", "channel": "rest"}
    assert _sample(runtime, "skillwire_calls_total", calls) == 1
    assert len(_audit_lines(caplog)) == 1


async def test_callable_skill_refuses_what_the_key_may_not_call(runtime: Runtime) -> None:
    """No `call` permission or a skill out of the key's scopes: 403; an unknown skill: 404."""
    with pytest.raises(Forbidden) as no_permission:
        await runtime.tasks.callable_skill(_principal(runtime, "sk_reader"), "demo", "echo")
    assert no_permission.value.details == {"permission": "call"}
    echoer = _principal(runtime, "sk_echo")
    assert (await runtime.tasks.callable_skill(echoer, "demo", "echo")).name == "echo"
    with pytest.raises(Forbidden) as out_of_scope:
        await runtime.tasks.callable_skill(echoer, "demo", "countdown")
    assert out_of_scope.value.details == {"skill": "demo.countdown"}
    with pytest.raises(NotFound):
        await runtime.tasks.callable_skill(echoer, "demo", "nope")


async def test_a_wait_on_the_task_just_created_still_sees_its_end(runtime: Runtime) -> None:
    """wait(created=...) skips the first read, not the end: a task cancelled while it is waited
    on comes back cancelled; with no time to wait, the created task comes back as it was."""
    user = _principal(runtime, "sk_user")
    spec = await runtime.tasks.callable_skill(user, "demo", "echo")
    result = await runtime.tasks.call(
        user, spec, CallBody(requests=[{"text": "hi"}]), channel="rest"
    )
    task_id = result.task.task_id
    assert await runtime.tasks.wait(user, task_id, 0, created=result.task) is result.task
    waiting = asyncio.create_task(runtime.tasks.wait(user, task_id, 30, created=result.task))
    await asyncio.sleep(0)  # one turn: the wait is listening
    await runtime.tasks.cancel(user, task_id, channel="rest")
    task = await asyncio.wait_for(waiting, scaled(5))
    assert task.status == "cancelled"
