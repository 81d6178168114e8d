"""The exception tree (``_errors.py``): codes, statuses, close codes and the map back."""

from __future__ import annotations

import pytest

from skillwire.protocol import (
    BackboneUnavailable,
    BadRequest,
    CloseCode,
    Conflict,
    ErrorCode,
    Expired,
    Forbidden,
    HeadersTooLarge,
    IllegalTransition,
    InternalError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    SkillError,
    SkillTimeout,
    SkillwireError,
    Unauthorized,
    UnsupportedVersion,
    ValidationError,
    error_class_for,
)

# class, parent, code, HTTP status, WS close code, temporary: the table in _errors' docstring
# (a class with no close code there closes with 1013; one with no status answers 500).
TABLE: list[tuple[type[SkillwireError], type[Exception], str, int, int, bool]] = [
    (SkillwireError, Exception, "INTERNAL_ERROR", 500, 1013, False),
    (BadRequest, SkillwireError, "BAD_REQUEST", 400, 1013, False),
    (UnsupportedVersion, BadRequest, "UNSUPPORTED_VERSION", 400, 1013, False),
    (Unauthorized, SkillwireError, "UNAUTHORIZED", 401, 4401, False),
    (Forbidden, SkillwireError, "FORBIDDEN", 403, 4403, False),
    (NotFound, SkillwireError, "NOT_FOUND", 404, 1013, False),
    (MethodNotAllowed, SkillwireError, "METHOD_NOT_ALLOWED", 405, 1013, False),
    (Conflict, SkillwireError, "CONFLICT", 409, 1013, False),
    (Expired, SkillwireError, "EXPIRED", 410, 1013, False),
    (PayloadTooLarge, SkillwireError, "PAYLOAD_TOO_LARGE", 413, 1009, False),
    (HeadersTooLarge, SkillwireError, "HEADERS_TOO_LARGE", 431, 1013, False),
    (ValidationError, SkillwireError, "VALIDATION_ERROR", 422, 1013, False),
    (RateLimited, SkillwireError, "RATE_LIMITED", 429, 1013, True),
    (InternalError, SkillwireError, "INTERNAL_ERROR", 500, 1013, False),
    (ServiceUnavailable, SkillwireError, "SERVICE_UNAVAILABLE", 503, 1012, True),
    (BackboneUnavailable, ServiceUnavailable, "SERVICE_UNAVAILABLE", 503, 1012, True),
    (SkillError, SkillwireError, "SKILL_ERROR", 500, 1013, False),
    (SkillTimeout, SkillError, "TIMEOUT", 500, 1013, False),
    (IllegalTransition, SkillwireError, "INTERNAL_ERROR", 500, 1013, False),
]


@pytest.mark.parametrize(
    ("cls", "parent", "code", "status", "close_code", "temporary"),
    TABLE,
    ids=[row[0].__name__ for row in TABLE],
)
def test_error_class_attributes(
    cls: type[SkillwireError],
    parent: type[Exception],
    code: str,
    status: int,
    close_code: int,
    temporary: bool,
) -> None:
    """Each class has the parent, code, status, close code and retry hint of the table."""
    assert cls.__bases__ == (parent,)
    error = cls()
    assert (error.code, error.status, error.close_code, error.temporary) == (
        code,
        status,
        close_code,
        temporary,
    )


def test_every_error_is_a_skillwire_error() -> None:
    """The table covers one tree rooted at SkillwireError, itself an Exception."""
    assert issubclass(SkillwireError, Exception)
    for cls, *_ in TABLE:
        assert issubclass(cls, SkillwireError)


# Codes the worker sets on a failed request (requests[i].error): never in an envelope, no class.
REQUEST_ONLY = {ErrorCode.SHUTDOWN, ErrorCode.WORKER_LOST, ErrorCode.UPSTREAM_ERROR}


@pytest.mark.parametrize("code", [c for c in ErrorCode if c not in REQUEST_ONLY])
def test_error_class_for_maps_every_code_back(code: ErrorCode) -> None:
    """error_class_for turns each wire code into a class that carries that code."""
    assert error_class_for(code).code == code
    assert error_class_for(str(code)).code == code


def test_request_failure_codes_of_the_worker_are_error_codes() -> None:
    """SHUTDOWN, WORKER_LOST and UPSTREAM_ERROR are ErrorCode members; as envelopes they map
    to the base class."""
    assert {c.value for c in REQUEST_ONLY} == {"SHUTDOWN", "WORKER_LOST", "UPSTREAM_ERROR"}
    assert all(error_class_for(c) is SkillwireError for c in REQUEST_ONLY)


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("BAD_REQUEST", BadRequest),
        ("UNSUPPORTED_VERSION", UnsupportedVersion),
        ("UNAUTHORIZED", Unauthorized),
        ("FORBIDDEN", Forbidden),
        ("NOT_FOUND", NotFound),
        ("METHOD_NOT_ALLOWED", MethodNotAllowed),
        ("CONFLICT", Conflict),
        ("EXPIRED", Expired),
        ("PAYLOAD_TOO_LARGE", PayloadTooLarge),
        ("HEADERS_TOO_LARGE", HeadersTooLarge),
        ("VALIDATION_ERROR", ValidationError),
        ("RATE_LIMITED", RateLimited),
        ("INTERNAL_ERROR", InternalError),
        ("SERVICE_UNAVAILABLE", ServiceUnavailable),
        ("SKILL_ERROR", SkillError),
        ("TIMEOUT", SkillTimeout),
    ],
)
def test_error_class_for(code: str, cls: type[SkillwireError]) -> None:
    """A wire code maps back to the most general class that sends it."""
    assert error_class_for(code) is cls


@pytest.mark.parametrize("code", ["NOPE", "", "bad_request", "QUOTA_EXCEEDED"])
def test_error_class_for_unknown_code(code: str) -> None:
    """An unknown code (a newer server's, or a skill's own) maps to SkillwireError."""
    assert error_class_for(code) is SkillwireError


def test_error_codes_are_their_names() -> None:
    """Every ErrorCode's wire value equals its name, so codes read the same in both."""
    assert all(code.value == code.name for code in ErrorCode)


def test_close_codes() -> None:
    """The close codes are those of API.md's Channels section."""
    assert {c.name: c.value for c in CloseCode} == {
        "NORMAL": 1000,
        "GOING_AWAY": 1001,
        "MESSAGE_TOO_BIG": 1009,
        "SERVICE_RESTART": 1012,
        "TRY_AGAIN_LATER": 1013,
        "UNAUTHENTICATED": 4401,
        "FORBIDDEN": 4403,
    }


def test_default_message() -> None:
    """An error raised without a message carries its class's default, also as str()."""
    error = NotFound()
    assert error.message == "not found"
    assert str(error) == "not found"
    assert error.details == {}
    assert error.request_id is None


def test_message_details_and_request_id() -> None:
    """Message, details and request_id given at raise time are kept."""
    error = ValidationError("invalid `x`", details={"field": "x"}, request_id="req-1")
    assert (error.message, error.details, error.request_id) == (
        "invalid `x`",
        {"field": "x"},
        "req-1",
    )
    assert str(error) == "invalid `x`"
    assert repr(error) == "ValidationError('invalid `x`', details={'field': 'x'})"


def test_details_are_not_shared() -> None:
    """Two errors without details never share one details dict."""
    first, second = BadRequest(), BadRequest()
    first.details["x"] = 1
    assert second.details == {}


def test_skill_error_with_a_custom_code() -> None:
    """A SkillError may name its own code, for that instance only."""
    error = SkillError("quota exhausted", code="QUOTA_EXCEEDED", details={"limit": 5})
    assert error.code == "QUOTA_EXCEEDED"
    assert (error.message, error.details, error.status) == ("quota exhausted", {"limit": 5}, 500)
    assert SkillError.code == "SKILL_ERROR"
    assert SkillError().code == "SKILL_ERROR"
    assert SkillTimeout().code == "TIMEOUT"


def test_errors_can_be_raised_and_caught_by_parent() -> None:
    """A BackboneUnavailable is caught as ServiceUnavailable and as SkillwireError."""
    with pytest.raises(ServiceUnavailable) as info:
        raise BackboneUnavailable()
    assert info.value.message == "backbone unavailable"
    assert isinstance(info.value, SkillwireError)
