"""HTTP skills ([[http_skills]]): JSON, NDJSON and SSE endpoints, failures, cancel, SSRF."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import RunningServer, scaled

from .helpers import TEXT_SCHEMA, call, events_of, finished, gap_free, task_when
from .upstream import Upstream, upstream_service

Factory = Callable[..., RunningServer]


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    yield from upstream_service()


def entry(upstream: Upstream, skill: str, path: str, **fields: Any) -> dict[str, Any]:
    return {
        "app": "hooks",
        "skill": skill,
        "url": f"{upstream.url}{path}",
        "input_schema": TEXT_SCHEMA,
        "allow_private": True,  # the test service listens on 127.0.0.1
        **fields,
    }


def gateway(factory: Factory, upstream: Upstream) -> RunningServer:
    return factory(
        {
            "http_skills": [
                entry(upstream, "upper", "/json", description="Upper-case"),
                entry(upstream, "spell", "/ndjson", mode="long"),
                entry(upstream, "spell_sse", "/sse", headers_env={"X-Token": "HTTP_SKILL_TOKEN"}),
                entry(upstream, "down", "/fail"),
                entry(upstream, "unended", "/unended"),
                entry(upstream, "slow", "/slow", mode="long"),
                entry(upstream, "broken", "/broken"),
                entry(upstream, "guarded", "/json", allow_private=False),
            ]
        }
    )


async def test_a_json_answer_is_one_output(server_factory: Factory, upstream: Upstream) -> None:
    """The endpoint gets task_id, index and input; its JSON answer is the request's output."""
    server = gateway(server_factory, upstream)
    async with server.async_client() as client:
        skill = (await client.get("/api/v1/apps/hooks/upper")).json()
    assert skill["remote"] is True and skill["description"] == "Upper-case"
    response = await call(server, "upper", [{"text": "ab"}], app="hooks", prefer="wait=10")
    task = response.json()
    assert task["status"] == "completed", task
    assert task["previews"] == [{"type": "text", "text": "AB"}]
    assert upstream.bodies[0] == {"task_id": task["task_id"], "index": 0, "input": {"text": "ab"}}


async def test_calls_are_validated_against_the_configured_schema(
    server_factory: Factory, upstream: Upstream
) -> None:
    """A request outside input_schema is a 422; the endpoint is never called."""
    server = gateway(server_factory, upstream)
    response = await call(server, "upper", [{"text": 1}], app="hooks")
    assert response.status_code == 422
    assert upstream.bodies == []


@pytest.mark.parametrize("skill", ["spell", "spell_sse"])
async def test_a_streamed_answer_is_read_as_worker_messages(
    server_factory: Factory, upstream: Upstream, skill: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NDJSON lines and SSE data become progress, a streamed output and the result."""
    monkeypatch.setenv("HTTP_SKILL_TOKEN", "s3cret")
    server = gateway(server_factory, upstream)
    response = await call(server, skill, [{"text": "héllo"}], app="hooks")
    task = await task_when(server, response.json()["task_id"], finished)
    assert task["status"] == "completed", task
    assert task["requests"][0]["output"] == [{"type": "text", "text": "héllo"}]
    assert task["requests"][0]["result"] == {"letters": 5}
    events = await events_of(server, task["task_id"])
    assert gap_free(events)
    assert [e["type"] for e in events].count("request.delta") >= 1
    if skill == "spell_sse":
        assert upstream.headers[0]["x-token"] == "s3cret"


@pytest.mark.parametrize(
    ("skill", "status", "kept"),
    [("down", 503, []), ("unended", 200, [1]), ("broken", 200, ["before"])],
)
async def test_failures_are_upstream_errors(
    server_factory: Factory, upstream: Upstream, skill: str, status: int, kept: list[Any]
) -> None:
    """A non-2xx answer, a broken stream or one that ends without completed fails with
    UPSTREAM_ERROR, keeping the outputs sent."""
    server = gateway(server_factory, upstream)
    response = await call(server, skill, [{"text": "a"}], app="hooks", prefer="wait=10")
    request = response.json()["requests"][0]
    assert request["error"]["code"] == "UPSTREAM_ERROR"
    assert request["error"]["details"]["status"] == status
    assert request["output"] == kept


async def test_a_cancel_closes_the_connection(server_factory: Factory, upstream: Upstream) -> None:
    """Cancelling the task closes the connection to the endpoint within 1 s."""
    server = gateway(server_factory, upstream)
    response = await call(server, "slow", [{"text": "a"}], app="hooks")
    task_id = response.json()["task_id"]
    await task_when(server, task_id, lambda t: t["requests"][0]["output"] == ["started"])
    async with server.async_client() as client:
        await client.delete(f"/api/v1/tasks/{task_id}")
    started = time.monotonic()
    assert await asyncio.to_thread(upstream.disconnected.wait, scaled(1.0))
    assert time.monotonic() - started < scaled(1.0)


async def test_private_addresses_are_refused_unless_allowed(
    server_factory: Factory, upstream: Upstream
) -> None:
    """Without allow_private, an endpoint on a loopback address fails, and is never called."""
    server = gateway(server_factory, upstream)
    response = await call(server, "guarded", [{"text": "a"}], app="hooks", prefer="wait=10")
    error = response.json()["requests"][0]["error"]
    assert error["code"] == "UPSTREAM_ERROR"
    assert "refused" in error["message"] and "loopback" in error["message"]
    assert upstream.bodies == []


def test_an_http_skill_url_that_is_not_http_stops_the_server() -> None:
    """A configured URL that is not http(s) is a configuration error naming the entry."""
    from skillwire.protocol import ValidationError
    from skillwire.server import create_app, load_config

    config = load_config(
        environ={}, overrides={"http_skills": [{"app": "a", "skill": "b", "url": "ftp://x/"}]}
    )
    with pytest.raises(ValidationError) as caught:
        create_app(config)
    assert caught.value.details["field"] == "http_skills[0].url"


async def test_openapi_shows_an_http_skills_schema(
    server_factory: Factory, upstream: Upstream
) -> None:
    """The call operation of an HTTP skill carries its configured input_schema."""
    server = gateway(server_factory, upstream)
    async with server.async_client() as client:
        document = (await client.get("/openapi.json")).json()
    body = document["paths"]["/api/v1/apps/hooks/upper"]["post"]["requestBody"]
    items = body["content"]["application/json"]["schema"]["properties"]["requests"]["items"]
    assert items == TEXT_SCHEMA
    assert "/api/v1/workers" in document["paths"]
