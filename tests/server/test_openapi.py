"""/openapi.json, /asyncapi.json and /docs, and a schemathesis run against the real server."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from skillwire.server import load_config
from skillwire.server._runtime import make_registry
from skillwire.server.http._openapi import openapi_document
from tests.conftest import ADMIN_KEY, READER_KEY, USER_KEY, RunningServer

_registry = make_registry(load_config(environ={}), [])
schema = schemathesis.openapi.from_dict(openapi_document(_registry, 5))


@pytest.fixture(scope="module")
def fuzz_server() -> Any:
    """One memory-backbone server for every generated case (the fuzz checks the HTTP layer)."""
    from tests.conftest import start_server

    running = start_server({"quick_wait": 1.0})
    yield running
    running.stop()


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_responses_match_the_schema(
    case: Any, fuzz_server: RunningServer
) -> None:
    """Generated requests never get a 5xx, and every response matches the documented schema."""
    if case.path.endswith("/events"):
        pytest.skip("streams are covered by the channel tests")
    if case.query:
        case.query.pop("stream", None)  # a streamed call is not JSON; the channel tests cover it
    case.call_and_validate(
        base_url=fuzz_server.url,
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        checks=[not_a_server_error, response_schema_conformance, content_type_conformance],
        timeout=10,
    )


def test_openapi_documents_each_skill_with_its_input_schema(server: RunningServer) -> None:
    """Each skill's call operation carries that skill's own input schema."""
    with server.client() as client:
        document = client.get("/openapi.json").json()
    body = document["paths"]["/api/v1/apps/demo/countdown"]["post"]["requestBody"]
    items = body["content"]["application/json"]["schema"]["properties"]["requests"]["items"]
    name = items["$ref"].rsplit("/", 1)[-1]
    countdown = document["components"]["schemas"][name]
    assert countdown["properties"]["n"]["maximum"] == 10000
    assert document["openapi"].startswith("3.1")


def test_docs_need_the_docs_permission(server: RunningServer) -> None:
    """/openapi.json, /asyncapi.json and /docs need `docs`; /docs is HTML with no CDN."""
    with server.client(None) as client:
        assert client.get("/openapi.json").status_code == 401
    with server.client(READER_KEY) as client:
        assert client.get("/openapi.json").status_code == 403
    with server.client(USER_KEY) as client:
        page = client.get("/docs")
        asyncapi = client.get("/asyncapi.json").json()
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert (
        "http://" not in page.text.replace("http://127.0.0.1", "") and "https://" not in page.text
    )
    assert asyncapi["asyncapi"] == "3.0.0"
    assert set(asyncapi["channels"]) == {"websocket", "events", "workers"}


def test_schemas_describe_streamed_outputs(server: RunningServer) -> None:
    """OpenAPI and AsyncAPI carry request.delta (Delta, DeltaEvent) and the Task's new fields."""
    with server.client() as client:
        openapi = client.get("/openapi.json").json()["components"]["schemas"]
        asyncapi = client.get("/asyncapi.json").json()
    for schemas in (openapi, asyncapi["components"]["schemas"]):
        assert schemas["Delta"]["required"] == ["output", "field", "append"]
        assert schemas["Delta"]["properties"]["output"]["minimum"] == 0
        assert "request.delta" in schemas["EventType"]["enum"]
    assert {"session_id", "parent_task_id", "children"} <= set(openapi["Task"]["properties"])
    assert {"outputs_dropped", "result"} <= set(openapi["RequestState"]["properties"])
    delta_event = asyncapi["components"]["schemas"]["DeltaEvent"]
    assert delta_event["allOf"][1]["properties"]["type"] == {"const": "request.delta"}
    assert "sse_delta" in asyncapi["channels"]["events"]["messages"]
    assert "ws_delta" in asyncapi["channels"]["websocket"]["messages"]


def test_metrics_need_the_metrics_permission_and_count_calls(server: RunningServer) -> None:
    """/metrics needs `metrics`; it counts calls, finished tasks and delivered events."""
    with server.client(USER_KEY) as client:
        assert client.get("/metrics").status_code == 403
    with server.client() as client:
        client.post("/api/v1/apps/demo/echo", json={"requests": [{"text": "m"}]})
        with client.stream("GET", "/api/v1/tasks?limit=1") as _:
            pass
        text = client.get("/metrics").text
    assert 'skillwire_calls_total{app="demo",channel="rest",skill="echo"} 1.0' in text
    assert 'skillwire_tasks_finished_total{app="demo",skill="echo",status="completed"} 1.0' in text
    assert "skillwire_queue_depth" in text
    assert all(
        line.startswith(("skillwire_", "# ", "python_", "process_"))
        for line in text.splitlines()
        if line
    )
