"""The error envelope for every status of API.md's error table, and X-Request-ID."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import RunningServer, start_server
from tests.server.conftest import UNLIMITED, assert_error

ECHO = "/api/v1/apps/demo/echo"


# -- 400 ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [
        b'{"requests": [',
        b"not json",
        b'{"requests": []}}',
        b"\xff\xfe",
        b'{"requests": [{"text": "\xff"}]}',  # invalid UTF-8 inside a string
        b'{"requests": [{"text": "\xed\xa0\x80"}]}',  # a UTF-8 encoded surrogate
    ],
)
def test_malformed_json_is_400(shared_server: RunningServer, body: bytes) -> None:
    """A body that is not JSON answers 400 BAD_REQUEST."""
    with shared_server.client() as client:
        response = client.post(ECHO, content=body, headers={"content-type": "application/json"})
    assert_error(response, 400, "BAD_REQUEST")


def test_empty_body_is_400(shared_server: RunningServer) -> None:
    """A call without a body answers 400 BAD_REQUEST."""
    with shared_server.client() as client:
        response = client.post(ECHO)
    assert_error(response, 400, "BAD_REQUEST")


@pytest.mark.parametrize("version", ["2", "0", 1, None])
def test_other_version_is_400_unsupported_version(
    shared_server: RunningServer, version: Any
) -> None:
    """A "version" other than "1" answers 400 UNSUPPORTED_VERSION naming the field."""
    with shared_server.client() as client:
        response = client.post(ECHO, json={"requests": [{"text": "a"}], "version": version})
    error = assert_error(response, 400, "UNSUPPORTED_VERSION")
    assert error["details"]["field"] == "version"


def test_version_1_is_accepted(shared_server: RunningServer) -> None:
    """ "version": "1" is the current version and is accepted."""
    with shared_server.client() as client:
        response = client.post(ECHO, json={"requests": [{"text": "a"}], "version": "1"})
    assert response.status_code == 200
    assert response.json()["status"] == "completed"


# -- 404 ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path", ["/api/v1/apps/demo/nope", "/api/v1/apps/nope/echo", "/api/v1/apps/DEMO/echo"]
)
def test_unknown_skill_is_404(shared_server: RunningServer, path: str) -> None:
    """Describing or calling a skill that is not registered answers 404 NOT_FOUND."""
    with shared_server.client() as client:
        described = client.get(path)
        called = client.post(path, json={"requests": [{"text": "a"}]})
    assert_error(described, 404, "NOT_FOUND")
    assert_error(called, 404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ("/nope", "sk_test_admin"),
        ("/nope", None),
        ("/api/v2/apps", None),
        ("/api/v1x", None),
        ("/api/v1/nope", "sk_test_admin"),
        ("/api/v1/tasks/x/y/z", "sk_test_admin"),
    ],
)
def test_unknown_route_is_404_envelope(
    shared_server: RunningServer, path: str, key: str | None
) -> None:
    """A path no route serves answers 404 NOT_FOUND with the envelope (under /api/v1, once
    authenticated: see test_auth for the 401 before it)."""
    with shared_server.client(key) as client:
        response = client.get(path)
    assert_error(response, 404, "NOT_FOUND")


def _forge(task_id: str) -> str:
    """The same id with one random byte changed: well formed, but never issued."""
    raw = bytearray(base64.urlsafe_b64decode(task_id[4:]))
    raw[10] ^= 0xFF
    return "tsk_" + base64.urlsafe_b64encode(bytes(raw)).decode()


def test_never_issued_task_id_is_404(shared_server: RunningServer) -> None:
    """A well-formed id that this server never issued answers 404 on GET, ?wait and DELETE."""
    with shared_server.client() as client:
        real = client.post(ECHO, json={"requests": [{"text": "a"}]}).json()["task_id"]
        forged = _forge(real)
        assert len(forged) == len(real)
        assert_error(client.get(f"/api/v1/tasks/{forged}"), 404, "NOT_FOUND")
        assert_error(client.get(f"/api/v1/tasks/{forged}?wait=1"), 404, "NOT_FOUND")
        assert_error(client.delete(f"/api/v1/tasks/{forged}"), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    "task_id", ["tsk_abc", "hello", "tsk_" + "!" * 32, "tsk_" + "A" * 32, "tsk_" + "A" * 33]
)
def test_malformed_task_id_is_404(shared_server: RunningServer, task_id: str) -> None:
    """A task id of the wrong shape answers 404 NOT_FOUND, never 400 or 500."""
    with shared_server.client() as client:
        assert_error(client.get(f"/api/v1/tasks/{task_id}"), 404, "NOT_FOUND")
        assert_error(client.delete(f"/api/v1/tasks/{task_id}"), 404, "NOT_FOUND")


# -- 405 ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/api/v1/tasks", {"GET", "HEAD"}),
        ("DELETE", "/api/v1/apps", {"GET", "HEAD"}),
        ("PATCH", "/api/v1/apps/demo/echo", {"GET", "HEAD", "POST"}),
        ("POST", "/api/v1/tasks/tsk_x", {"GET", "HEAD", "DELETE"}),
        ("DELETE", "/health", {"GET", "HEAD"}),
    ],
)
def test_wrong_method_is_405_with_allow(
    shared_server: RunningServer, method: str, path: str, allowed: set[str]
) -> None:
    """A method the route does not serve answers 405 with the envelope and an Allow header."""
    with shared_server.client() as client:
        response = client.request(method, path)
    assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert {m.strip() for m in response.headers["allow"].split(",")} == allowed


# -- 413 ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_body_server() -> Iterator[RunningServer]:
    """A server that takes bodies of at most 1000 bytes."""
    server = start_server({"max_body": 1000, **UNLIMITED})
    yield server
    server.stop()


def test_body_over_max_body_is_413(small_body_server: RunningServer) -> None:
    """A Content-Length over max_body answers 413 PAYLOAD_TOO_LARGE naming the limit."""
    body = b'{"requests": [{"text": "' + b"x" * 2000 + b'"}]}'
    with small_body_server.client() as client:
        response = client.post(ECHO, content=body, headers={"content-type": "application/json"})
    error = assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert error["details"]["limit"] == 1000


def test_chunked_body_over_limit_is_413(small_body_server: RunningServer) -> None:
    """A body streamed without Content-Length answers 413 once it passes max_body."""

    def chunks() -> Iterator[bytes]:
        yield b'{"requests": [{"text": "'
        for _ in range(8):
            yield b"x" * 300
        yield b'"}]}'

    with small_body_server.client() as client:
        request = client.build_request("POST", ECHO, content=chunks())
        assert "content-length" not in request.headers
        assert request.headers["transfer-encoding"] == "chunked"
        response = client.send(request)
    error = assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert error["details"]["limit"] == 1000


def test_chunked_body_within_limit_is_accepted(small_body_server: RunningServer) -> None:
    """A chunked body under max_body is read whole and the call runs."""

    def chunks() -> Iterator[bytes]:
        yield b'{"requests": [{"text": "'
        yield b"y" * 300
        yield b'"}]}'

    with small_body_server.client() as client:
        response = client.post(ECHO, content=chunks())
    assert response.status_code == 200, response.text
    assert response.json()["previews"] == [{"type": "text", "text": "y" * 300}]


def test_body_at_exactly_the_limit_is_accepted(small_body_server: RunningServer) -> None:
    """A body of exactly max_body bytes is not too large."""
    prefix, suffix = b'{"requests": [{"text": "', b'"}]}'
    body = prefix + b"z" * (1000 - len(prefix) - len(suffix)) + suffix
    assert len(body) == 1000
    with small_body_server.client() as client:
        response = client.post(ECHO, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text


# -- 422 ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("requests", "field"),
    [
        ([{"text": 1}], "requests[0].text"),
        ([{"text": "ok"}, {"text": "a", "fail": "yes"}], "requests[1].fail"),
        ([{"text": "ok"}, {"text": None}], "requests[1].text"),
    ],
)
def test_wrong_type_is_422_naming_the_field(
    shared_server: RunningServer, requests: list[Any], field: str
) -> None:
    """A request item of the wrong type answers 422 with the field path and the constraint."""
    with shared_server.client() as client:
        response = client.post(ECHO, json={"requests": requests})
    error = assert_error(response, 422, "VALIDATION_ERROR")
    assert error["details"]["field"] == field
    assert error["details"]["constraint"]


def test_missing_request_field_is_422(shared_server: RunningServer) -> None:
    """A request item missing a required field answers 422 naming the item and the field."""
    with shared_server.client() as client:
        response = client.post(ECHO, json={"requests": [{"text": "a"}, {}]})
    error = assert_error(response, 422, "VALIDATION_ERROR")
    assert error["details"]["field"] == "requests[1].text"
    assert "text" in error["details"]["constraint"]


def test_missing_requests_field_names_it(shared_server: RunningServer) -> None:
    """A body without "requests" answers 422 with details.field == "requests"."""
    with shared_server.client() as client:
        response = client.post(ECHO, json={"metadata": {}})
    error = assert_error(response, 422, "VALIDATION_ERROR")
    assert error["details"]["field"] == "requests"


def test_too_many_requests_is_422(shared_server: RunningServer) -> None:
    """Six requests to a skill that takes at most five answer 422 naming "requests"."""
    with shared_server.client() as client:
        response = client.post(ECHO, json={"requests": [{"text": str(i)} for i in range(6)]})
    error = assert_error(response, 422, "VALIDATION_ERROR")
    assert error["details"]["field"] == "requests"
    assert "5" in error["details"]["constraint"]


def test_five_requests_are_accepted(shared_server: RunningServer) -> None:
    """Exactly max_requests requests are accepted."""
    with shared_server.client() as client:
        response = client.post(ECHO, json={"requests": [{"text": str(i)} for i in range(5)]})
    assert response.status_code == 200
    assert len(response.json()["requests"]) == 5


@pytest.mark.parametrize("body", [{"requests": []}, {"requests": "text"}, {"requests": [1]}])
def test_bad_requests_list_is_422(shared_server: RunningServer, body: dict[str, Any]) -> None:
    """An empty requests list, or one that is not a list of objects, answers 422."""
    with shared_server.client() as client:
        response = client.post(ECHO, json=body)
    error = assert_error(response, 422, "VALIDATION_ERROR")
    assert error["details"]["field"].startswith("requests")


@pytest.mark.parametrize("body", [b'[{"text": "a"}]', b'"requests"', b"42", b"null"])
def test_body_that_is_not_an_object_is_422(shared_server: RunningServer, body: bytes) -> None:
    """A JSON body that is not an object answers 422 VALIDATION_ERROR."""
    with shared_server.client() as client:
        response = client.post(ECHO, content=body, headers={"content-type": "application/json"})
    assert_error(response, 422, "VALIDATION_ERROR")


@pytest.mark.parametrize(
    "body",
    [
        {"requests": [{"text": "a"}], "metadata": "x"},
        {"requests": [{"text": "a"}], "webhook_url": 5},
    ],
)
def test_bad_call_field_is_422(shared_server: RunningServer, body: dict[str, Any]) -> None:
    """A call body field of the wrong type answers 422 naming it."""
    with shared_server.client() as client:
        response = client.post(ECHO, json=body)
    error = assert_error(response, 422, "VALIDATION_ERROR")
    assert error["details"]["field"] in {"metadata", "webhook_url"}


def test_unknown_fields_are_tolerated(shared_server: RunningServer) -> None:
    """Unknown fields in the body and in a request item are ignored."""
    with shared_server.client() as client:
        response = client.post(
            ECHO, json={"requests": [{"text": "a", "colour": "red"}], "future_field": [1, 2]}
        )
    assert response.status_code == 200, response.text
    assert response.json()["previews"] == [{"type": "text", "text": "a"}]


# -- 500 ---------------------------------------------------------------------------------
def test_unexpected_exception_is_500_generic(
    shared_server: RunningServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An endpoint's unexpected exception answers 500 INTERNAL_ERROR, traceback only in the log."""

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internals: db password is hunter2")

    monkeypatch.setattr(shared_server.runtime.tasks, "list", broken)  # undone after the test
    with shared_server.client() as client:
        response = client.get("/api/v1/tasks", headers={"X-Request-ID": "trace-500"})
        after = client.get("/api/v1/apps")
    error = assert_error(response, 500, "INTERNAL_ERROR")
    assert error["request_id"] == "trace-500"
    assert error["message"] == "internal error"
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text
    assert "Traceback" not in response.text
    assert after.status_code == 200  # the server carries on
    assert "hunter2" in caplog.text  # the traceback went to the log
    assert "trace-500" in caplog.text


# -- X-Request-ID ------------------------------------------------------------------------
REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/health", {}),
    ("GET", "/readyz", {}),
    ("GET", "/api/v1/apps", {}),
    ("POST", ECHO, {"json": {"requests": [{"text": "a"}]}}),
    ("POST", "/api/v1/apps/demo/countdown", {"json": {"requests": [{"n": 1, "interval": 0}]}}),
    ("POST", ECHO, {"json": {"requests": []}}),
    ("GET", "/api/v1/tasks/tsk_missing", {}),
    ("PUT", "/api/v1/tasks", {}),
    ("GET", "/nowhere", {}),
]


@pytest.mark.parametrize(("method", "path", "kwargs"), REQUESTS)
def test_every_response_has_a_request_id(
    shared_server: RunningServer, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    """Every response carries a generated X-Request-ID, also on errors and without a key."""
    with shared_server.client() as client:
        response = client.request(method, path, **kwargs)
    with shared_server.client(None) as anonymous:
        unauthenticated = anonymous.request(method, path, **kwargs)
    for answer in (response, unauthenticated):
        assert answer.headers["x-request-id"]
        if answer.status_code >= 400:
            assert answer.json()["error"]["request_id"] == answer.headers["x-request-id"]
    assert response.headers["x-request-id"] != unauthenticated.headers["x-request-id"]


@pytest.mark.parametrize(("method", "path", "kwargs"), REQUESTS)
def test_request_id_is_echoed(
    shared_server: RunningServer, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    """A client's X-Request-ID comes back on the response and in the error body."""
    with shared_server.client() as client:
        response = client.request(method, path, headers={"X-Request-ID": "my-id.42"}, **kwargs)
    assert response.headers["x-request-id"] == "my-id.42"
    if response.status_code >= 400:
        assert response.json()["error"]["request_id"] == "my-id.42"


@pytest.mark.parametrize("given", ["has space", "x" * 200, "new\\nline", ""])
def test_unsafe_request_id_is_replaced(shared_server: RunningServer, given: str) -> None:
    """An X-Request-ID that is empty, too long or has odd characters is replaced by a fresh one."""
    with shared_server.client(None) as client:
        response = client.get("/api/v1/apps", headers={"X-Request-ID": given})
    error = assert_error(response, 401, "UNAUTHORIZED")
    assert error["request_id"] != given
    assert error["request_id"].startswith("req_")


def test_request_ids_are_unique(shared_server: RunningServer) -> None:
    """Generated request ids differ from one response to the next."""
    with shared_server.client() as client:
        ids = {client.get("/health").headers["x-request-id"] for _ in range(20)}
    assert len(ids) == 20


def test_request_id_on_413(small_body_server: RunningServer) -> None:
    """A 413 also carries the echoed X-Request-ID."""
    with small_body_server.client() as client:
        response = client.post(
            ECHO, content=b"x" * 5000, headers={"X-Request-ID": "big-1", "content-type": "x"}
        )
    error = assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert error["request_id"] == "big-1"


def test_error_responses_are_json_never_html(shared_server: RunningServer) -> None:
    """Error bodies are JSON envelopes whatever the client accepts."""
    with shared_server.client(None) as client:
        response = client.get("/nope", headers={"Accept": "text/html"})
    assert_error(response, 404, "NOT_FOUND")
