"""/openapi.json, /asyncapi.json and /docs, and a schemathesis run against the real server."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from skillwire.server import create_app, load_config
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


def test_documents_need_the_docs_permission(server: RunningServer) -> None:
    """/openapi.json and /asyncapi.json need `docs` (401 without a key, 403 without it)."""
    with server.client(None) as client:
        assert client.get("/openapi.json").status_code == 401
        assert client.get("/asyncapi.json").status_code == 401
    with server.client(READER_KEY) as client:
        assert client.get("/openapi.json").status_code == 403
    with server.client(USER_KEY) as client:
        asyncapi = client.get("/asyncapi.json").json()
    assert asyncapi["asyncapi"] == "3.0.0"
    assert set(asyncapi["channels"]) == {"websocket", "events", "session_events", "workers"}


BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def test_docs_page_needs_no_key_holds_no_api_data_and_uses_no_cdn(server: RunningServer) -> None:
    """/docs answers its page to a browser without a key (no ?ticket=); it names only its own files."""
    with server.client(None) as client:
        page = client.get("/docs", headers=BROWSER)
        again = client.get("/docs", headers=BROWSER)  # a reload: no ticket spent, the same page
        assets = {name: client.get(f"/docs/{name}") for name in DOCS_ASSETS}
        missing = [
            client.get(f"/docs/{name}")
            for name in ("index.html", "swagger-ui.js.map", "oauth2-redirect.html")
        ]
    assert page.status_code == again.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "/api/v1/apps/demo" not in page.text
    assert "https://" not in page.text and "http://" not in page.text
    linked = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert {f"docs/{name}" for name in DOCS_ASSETS} <= set(linked)
    assert all(not url.startswith(("/", "http")) for url in linked), linked  # served here
    for name, response in assets.items():
        assert response.status_code == 200, name
        assert response.headers["content-type"].startswith(DOCS_ASSETS[name]), name
    assert b"SwaggerUIBundle" in assets["swagger-ui-bundle.js"].content
    assert all(response.status_code == 404 for response in missing)


def test_docs_page_needs_the_docs_permission_outside_a_browser(server: RunningServer) -> None:
    """/docs without a key and not asking for HTML is 401; with a key, `docs` is checked."""
    with server.client(None) as client:
        assert client.get("/docs").status_code == 401
    with server.client(READER_KEY) as client:
        assert client.get("/docs", headers=BROWSER).status_code == 403
    with server.client(USER_KEY) as client:
        assert client.get("/docs").status_code == 200


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


API_DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
# Served besides the OpenAPI paths, as docs/api.md says after its path list.
NOT_IN_OPENAPI = {
    "/api/v1/ws",
    "/api/v1/workers/ws",
    "/openapi.json",
    "/asyncapi.json",
    "/docs",
    "/docs/{name}",
    "/",
    "/skillwire.js",
    "/v1/models",
    "/v1/chat/completions",
    "/v1/chat/completions/{task_id}/stream",
}
DOCS_ASSETS = {
    "swagger-ui-bundle.js": "application/javascript",
    "swagger-ui.css": "text/css",
    "docs.js": "application/javascript",
    "docs.css": "text/css",
}


def _documented_paths() -> list[str]:
    """The path list docs/api.md shows as the output of its `openapi.json` paths command."""
    text = API_DOC.read_text()
    found = re.search(r'\["paths"\], sep="\\n"\)\'\n```\n```\n(.*?)\n```', text, re.DOTALL)
    assert found is not None, "the path list of docs/api.md moved"
    return found.group(1).splitlines()


def test_documented_path_list_is_the_openapi_paths() -> None:
    """docs/api.md's path list is exactly /openapi.json's paths with the demo app, in order."""
    registry = make_registry(load_config(environ={}), [])
    assert _documented_paths() == list(openapi_document(registry, 5)["paths"])


def test_documented_paths_are_the_routes() -> None:
    """The documented paths (but the per-skill ones) and the extra list are the app's routes."""
    app = create_app(load_config(environ={}, overrides={"api_key": ADMIN_KEY}))
    routes = {route.path for route in app.routes}  # type: ignore[attr-defined]
    generic = {p for p in _documented_paths() if not p.startswith("/api/v1/apps/demo/")}
    assert generic | NOT_IN_OPENAPI == routes
    assert not generic & NOT_IN_OPENAPI
    text = API_DOC.read_text()
    assert all(f"`{path}`" in text for path in NOT_IN_OPENAPI)
