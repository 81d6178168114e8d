"""skillwire's one exception tree.

Every error that can cross the wire is a ``SkillwireError``; the HTTP layer turns it into the
error envelope, the WebSocket layer into an ``error`` op or a close code, and the client maps
an envelope back onto the same class::

    SkillwireError
    ├── BadRequest                 400 BAD_REQUEST
    │   └── UnsupportedVersion     400 UNSUPPORTED_VERSION
    ├── Unauthorized               401 UNAUTHORIZED          (WS close 4401)
    ├── Forbidden                  403 FORBIDDEN             (WS close 4403)
    ├── NotFound                   404 NOT_FOUND
    ├── MethodNotAllowed           405 METHOD_NOT_ALLOWED
    ├── Conflict                   409 CONFLICT
    ├── Expired                    410 EXPIRED
    ├── PayloadTooLarge            413 PAYLOAD_TOO_LARGE     (WS close 1009)
    ├── ValidationError            422 VALIDATION_ERROR
    ├── HeadersTooLarge            431 HEADERS_TOO_LARGE
    ├── RateLimited                429 RATE_LIMITED          (temporary)
    ├── InternalError              500 INTERNAL_ERROR
    ├── ServiceUnavailable         503 SERVICE_UNAVAILABLE   (temporary, WS close 1012)
    │   └── BackboneUnavailable    503 SERVICE_UNAVAILABLE   (temporary, WS close 1012)
    ├── SkillError                 a skill's own failure, reported in ``request.failed``
    │   └── SkillTimeout           TIMEOUT
    └── IllegalTransition          a lifecycle rule broken (a bug, never a client's fault)

A class with no status above answers 500 (and its ``code`` is ``INTERNAL_ERROR`` unless named);
one with no close code above closes a WebSocket with 1013 (try again later).

Three codes have no class: the worker fails a request with them (``requests[i].error``), they
never come in an error envelope. ``SHUTDOWN``: the memory-backbone server stopped before the
request finished. ``WORKER_LOST``: its work item was delivered ``work_max_deliveries`` times,
the worker lost each time. ``UPSTREAM_ERROR``: an LLM upstream or an HTTP skill's endpoint
failed (the OpenAI-compatible routes answer it with 502 in their own error shape).
"""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import Any, ClassVar

__all__ = [
    "BackboneUnavailable",
    "BadRequest",
    "CloseCode",
    "Conflict",
    "ErrorCode",
    "Expired",
    "Forbidden",
    "HeadersTooLarge",
    "IllegalTransition",
    "InternalError",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "ServiceUnavailable",
    "SkillError",
    "SkillTimeout",
    "SkillwireError",
    "Unauthorized",
    "UnsupportedVersion",
    "ValidationError",
    "error_class_for",
]


class ErrorCode(StrEnum):
    BAD_REQUEST = "BAD_REQUEST"
    UNSUPPORTED_VERSION = "UNSUPPORTED_VERSION"
    UNAUTHORIZED = "UNAUTHORIZED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    EXPIRED = "EXPIRED"
    CONFLICT = "CONFLICT"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    VALIDATION_ERROR = "VALIDATION_ERROR"
    RATE_LIMITED = "RATE_LIMITED"
    HEADERS_TOO_LARGE = "HEADERS_TOO_LARGE"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    SKILL_ERROR = "SKILL_ERROR"
    TIMEOUT = "TIMEOUT"
    SHUTDOWN = "SHUTDOWN"
    WORKER_LOST = "WORKER_LOST"
    UPSTREAM_ERROR = "UPSTREAM_ERROR"


class CloseCode(IntEnum):
    """WebSocket close codes that skillwire uses (API.md, Channels)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    MESSAGE_TOO_BIG = 1009
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    UNAUTHENTICATED = 4401
    FORBIDDEN = 4403


class SkillwireError(Exception):
    """Base of every skillwire error.

    ``code`` is stable and goes on the wire; ``status`` is the HTTP status; ``close_code`` is
    the WebSocket close code when the error ends a connection; ``temporary`` says whether the
    same request may succeed if retried later.
    """

    code: ClassVar[str] = ErrorCode.INTERNAL_ERROR
    status: ClassVar[int] = 500
    close_code: ClassVar[int] = CloseCode.TRY_AGAIN_LATER
    temporary: ClassVar[bool] = False
    default_message: ClassVar[str] = "internal error"

    def __init__(
        self,
        message: str | None = None,
        *,
        details: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.details: dict[str, Any] = details or {}
        self.request_id = request_id
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, details={self.details!r})"


class BadRequest(SkillwireError):
    code = ErrorCode.BAD_REQUEST
    status = 400
    default_message = "bad request"


class UnsupportedVersion(BadRequest):
    code = ErrorCode.UNSUPPORTED_VERSION
    default_message = "unsupported API version"


class Unauthorized(SkillwireError):
    code = ErrorCode.UNAUTHORIZED
    status = 401
    close_code = CloseCode.UNAUTHENTICATED
    default_message = "missing or invalid credentials"


class Forbidden(SkillwireError):
    code = ErrorCode.FORBIDDEN
    status = 403
    close_code = CloseCode.FORBIDDEN
    default_message = "not allowed"


class NotFound(SkillwireError):
    code = ErrorCode.NOT_FOUND
    status = 404
    default_message = "not found"


class MethodNotAllowed(SkillwireError):
    code = ErrorCode.METHOD_NOT_ALLOWED
    status = 405
    default_message = "method not allowed"


class Conflict(SkillwireError):
    code = ErrorCode.CONFLICT
    status = 409
    default_message = "conflict"


class Expired(SkillwireError):
    code = ErrorCode.EXPIRED
    status = 410
    default_message = "expired: past the retention window"


class PayloadTooLarge(SkillwireError):
    code = ErrorCode.PAYLOAD_TOO_LARGE
    status = 413
    close_code = CloseCode.MESSAGE_TOO_BIG
    default_message = "payload too large"


class ValidationError(SkillwireError):
    code = ErrorCode.VALIDATION_ERROR
    status = 422
    default_message = "validation error"


class HeadersTooLarge(SkillwireError):
    code = ErrorCode.HEADERS_TOO_LARGE
    status = 431
    default_message = "request headers too large"


class RateLimited(SkillwireError):
    code = ErrorCode.RATE_LIMITED
    status = 429
    temporary = True
    default_message = "rate limit exceeded"


class InternalError(SkillwireError):
    pass


class ServiceUnavailable(SkillwireError):
    code = ErrorCode.SERVICE_UNAVAILABLE
    status = 503
    close_code = CloseCode.SERVICE_RESTART
    temporary = True
    default_message = "service unavailable"


class BackboneUnavailable(ServiceUnavailable):
    default_message = "backbone unavailable"


class SkillError(SkillwireError):
    """Raised by a skill to fail one sub-request with its own code and message."""

    code = ErrorCode.SKILL_ERROR
    default_message = "skill failed"

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, details=details)
        if code is not None:
            self.code = code  # type: ignore[misc,assignment]  # an instance may name its own code


class SkillTimeout(SkillError):
    code = ErrorCode.TIMEOUT
    default_message = "the skill did not finish within its timeout"


class IllegalTransition(SkillwireError):
    default_message = "illegal lifecycle transition"


_BY_CODE: dict[str, type[SkillwireError]] = {
    cls.code: cls
    for cls in (
        BadRequest,
        UnsupportedVersion,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        Conflict,
        Expired,
        PayloadTooLarge,
        ValidationError,
        HeadersTooLarge,
        RateLimited,
        InternalError,
        ServiceUnavailable,
        SkillError,
        SkillTimeout,
    )
}


def error_class_for(code: str) -> type[SkillwireError]:
    """The class a wire error ``code`` maps back to (``SkillwireError`` when unknown)."""
    return _BY_CODE.get(code, SkillwireError)
