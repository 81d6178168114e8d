"""Typed errors: the error envelope, WebSocket closes and transport failures, one tree."""

from __future__ import annotations

import pytest

from skillwire.client import (
    AsyncClient,
    BadRequest,
    Client,
    Forbidden,
    InternalError,
    NotFound,
    RateLimited,
    ServiceUnavailable,
    SkillwireError,
    TransportError,
    TransportTimeout,
    TransportUnavailable,
    Unauthorized,
    ValidationError,
)
from skillwire.client._errors import error_from_close, error_from_response
from tests.client.conftest import client_options
from tests.conftest import SCOPED_KEY, RunningServer, free_port


async def test_unknown_task_is_not_found_with_request_id(client: AsyncClient) -> None:
    """A 404 envelope becomes NotFound carrying request_id, details and status."""
    with pytest.raises(NotFound) as info:
        await client.task("tsk_doesnotexist")
    error = info.value
    assert error.status == 404
    assert error.code == "NOT_FOUND"
    assert error.request_id
    assert error.request_id.startswith("req_")
    assert isinstance(error.details, dict)


async def test_request_id_is_the_one_sent(shared_server: RunningServer) -> None:
    """A caller's own X-Request-ID comes back on the error."""
    options = client_options(headers={"X-Request-ID": "mine-123"})
    async with AsyncClient(shared_server.url, **options) as client:
        with pytest.raises(NotFound) as info:
            await client.skill("demo", "nope")
    assert info.value.request_id == "mine-123"


@pytest.mark.parametrize("key", [None, "sk_wrong"])
async def test_missing_or_bad_key_is_unauthorized(
    shared_server: RunningServer, key: str | None
) -> None:
    """401 becomes Unauthorized, on REST and on every stream transport."""
    async with AsyncClient(shared_server.url, **client_options(api_key=key)) as client:
        with pytest.raises(Unauthorized) as info:
            await client.apps()
        assert info.value.status == 401
        for transport in ("ws", "sse", "ndjson", "poll"):
            with pytest.raises(Unauthorized):
                async for _ in client.events("tsk_x", transport=transport):
                    pass


async def test_scoped_key_is_forbidden(shared_server: RunningServer) -> None:
    """403 becomes Forbidden, over REST and over the WebSocket call op."""
    async with AsyncClient(shared_server.url, **client_options(api_key=SCOPED_KEY)) as client:
        with pytest.raises(Forbidden):
            await client.call("demo", "countdown", [{"n": 1}])
        with pytest.raises(Forbidden):
            async for _ in client.stream("demo", "countdown", [{"n": 1}], transport="ws"):
                pass


async def test_invalid_input_is_a_validation_error_naming_the_field(client: AsyncClient) -> None:
    """422 becomes ValidationError whose details name the field."""
    with pytest.raises(ValidationError) as info:
        await client.call("demo", "countdown", [{"n": "many"}])
    assert "requests[0]" in info.value.details["field"]


async def test_bad_query_parameter_is_bad_request(client: AsyncClient) -> None:
    """400 becomes BadRequest."""
    with pytest.raises(BadRequest):
        await client.tasks(status="bogus")


async def test_unknown_task_on_every_transport_is_not_found(client: AsyncClient) -> None:
    """events() of an unknown task raises NotFound, whatever the transport, without retrying."""
    for transport in ("auto", "ws", "sse", "ndjson", "poll"):
        with pytest.raises(NotFound):
            async for _ in client.events("tsk_unknown", transport=transport):
                pass


async def test_unreachable_server_is_a_transport_error() -> None:
    """A refused connection becomes TransportError (temporary, never connected) after retries."""
    url = f"http://127.0.0.1:{free_port()}"
    async with AsyncClient(url, **client_options(retries=1)) as client:
        with pytest.raises(TransportError) as info:
            await client.apps()
    assert info.value.temporary
    assert not info.value.connected
    assert isinstance(info.value.__cause__, Exception)
    assert isinstance(info.value, SkillwireError)


def test_sync_client_raises_the_same_errors(sync_client: Client) -> None:
    """The blocking Client raises the same typed errors."""
    with pytest.raises(NotFound) as info:
        sync_client.cancel("tsk_nope")
    assert info.value.request_id


def test_response_without_envelope_maps_by_status() -> None:
    """A proxy's non-JSON 502 is ServiceUnavailable (temporary) with the real status."""
    error = error_from_response(502, {"x-request-id": "r1"}, b"<html>Bad gateway</html>")
    assert isinstance(error, ServiceUnavailable)
    assert error.status == 502
    assert error.temporary
    assert error.request_id == "r1"
    teapot = error_from_response(418, {}, b"")
    assert isinstance(teapot, BadRequest)
    assert teapot.status == 418


def test_unknown_code_keeps_the_wire_code() -> None:
    """An envelope with a code this client does not know is a SkillwireError with that code."""
    body = (
        b'{"error": {"code": "NEW_THING", "message": "m", "details": {"a": 1}, "request_id": "q"}}'
    )
    error = error_from_response(499, {}, body)
    assert type(error) is SkillwireError
    assert (error.code, error.status, error.details, error.request_id) == (
        "NEW_THING",
        499,
        {"a": 1},
        "q",
    )


def test_rate_limited_carries_retry_after() -> None:
    """A 429 becomes RateLimited with Retry-After in its details."""
    body = b'{"error": {"code": "RATE_LIMITED", "message": "slow down", "details": {}}}'
    error = error_from_response(429, {"retry-after": "3", "x-request-id": "r9"}, body)
    assert isinstance(error, RateLimited)
    assert error.details["retry_after"] == 3.0
    assert error.request_id == "r9"


def test_close_codes_map_onto_the_tree() -> None:
    """4401/4403 are final errors; 1012, 1013 and an abnormal close are temporary drops."""
    assert isinstance(error_from_close(4401, "invalid token"), Unauthorized)
    assert isinstance(error_from_close(4403), Forbidden)
    for code in (1012, 1013, None):
        drop = error_from_close(code)
        assert type(drop) is TransportError
        assert drop.temporary
        assert drop.details["close_code"] == code


def test_transport_errors_are_one_branch() -> None:
    """TransportTimeout and TransportUnavailable are TransportErrors; only the latter is final."""
    assert issubclass(TransportTimeout, TransportError)
    assert issubclass(TransportUnavailable, TransportError)
    assert TransportTimeout.temporary
    assert not TransportUnavailable.temporary
    assert not issubclass(InternalError, TransportError)
