"""The client's errors, and the one place where foreign exceptions become skillwire's.

Every error the client raises is a ``SkillwireError``. An error envelope from the server (or
an ``error`` op on a WebSocket) becomes the class its ``code`` names, through
``skillwire.protocol.error_class_for``. What httpx and websockets raise is translated here,
once, into the transport branch of the same tree::

    SkillwireError                  skillwire.protocol: one subclass per wire code
    ├── NotFound, Unauthorized, …   from an error envelope, an ``error`` op or a 44xx close
    └── TransportError              TRANSPORT_ERROR: no answer; the connection failed or dropped
        ├── TransportTimeout        no answer (or no heartbeat) in time
        └── TransportUnavailable    this channel cannot work here (e.g. a proxy refuses the
                                    WebSocket upgrade); ``transport="auto"`` falls back

``TransportError`` and ``TransportTimeout`` are ``temporary``: the same request may succeed if
retried. ``TransportUnavailable`` is not.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import msgspec
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from skillwire.protocol import (
    BadRequest,
    CloseCode,
    Conflict,
    ErrorBody,
    ErrorEnvelope,
    Expired,
    Forbidden,
    InternalError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    SkillwireError,
    Unauthorized,
    ValidationError,
    error_class_for,
)

__all__ = [
    "TransportError",
    "TransportTimeout",
    "TransportUnavailable",
    "error_from_body",
    "error_from_close",
    "error_from_response",
    "map_httpx_exceptions",
    "map_ws_exceptions",
    "undecodable",
]


class TransportError(SkillwireError):
    """The server could not be reached, or the connection dropped before an answer.

    ``connected`` is False when no connection was ever made, so the request surely did not
    reach the server (safe to retry whatever it was).
    """

    code = "TRANSPORT_ERROR"
    status = 0  # no HTTP response
    temporary = True
    default_message = "connection failed"

    def __init__(
        self,
        message: str | None = None,
        *,
        details: dict[str, Any] | None = None,
        request_id: str | None = None,
        connected: bool = True,
    ) -> None:
        super().__init__(message, details=details, request_id=request_id)
        self.connected = connected


class TransportTimeout(TransportError):
    code = "TRANSPORT_TIMEOUT"
    default_message = "timed out"


class TransportUnavailable(TransportError):
    code = "TRANSPORT_UNAVAILABLE"
    temporary = False
    default_message = "this transport is not available"


# A response without an error envelope (a proxy's HTML page, say) maps by its status.
_BY_STATUS: dict[int, type[SkillwireError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    410: Expired,
    413: PayloadTooLarge,
    422: ValidationError,
    429: RateLimited,
    502: ServiceUnavailable,
    503: ServiceUnavailable,
    504: ServiceUnavailable,
}
_envelope_decoder = msgspec.json.Decoder(ErrorEnvelope)
_CLOSE_ERRORS: dict[int, type[SkillwireError]] = {
    CloseCode.UNAUTHENTICATED: Unauthorized,
    CloseCode.FORBIDDEN: Forbidden,
    CloseCode.MESSAGE_TOO_BIG: PayloadTooLarge,
}


def _set_wire_facts(exc: SkillwireError, code: str, status: int | None) -> SkillwireError:
    # The classes hold code and status as class attributes; an instance keeps what the wire
    # said when it differs (an unknown code, or a status a proxy chose).
    if exc.code != code:
        exc.code = code  # type: ignore[misc]
    if status is not None and exc.status != status:
        exc.status = status  # type: ignore[misc]
    return exc


def error_from_body(body: ErrorBody, status: int | None = None) -> SkillwireError:
    """The exception an error object (envelope or WS ``error`` op) stands for."""
    cls = error_class_for(body.code)
    exc = cls(body.message, details=dict(body.details), request_id=body.request_id)
    return _set_wire_facts(exc, body.code, status)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        return None  # an HTTP date: rare enough to fall back on our own backoff


def error_from_response(status: int, headers: Mapping[str, str], body: bytes) -> SkillwireError:
    """The exception a non-2xx HTTP response stands for; ``request_id`` always filled."""
    request_id = headers.get("x-request-id")
    try:
        envelope = _envelope_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        cls = _BY_STATUS.get(status, InternalError if status >= 500 else BadRequest)
        text = body[:200].decode("utf-8", "replace").strip()
        exc = cls(f"HTTP {status}: {text}" if text else f"HTTP {status}", request_id=request_id)
        exc = _set_wire_facts(exc, cls.code, status)
    else:
        error = envelope.error
        if error.request_id is None:
            error.request_id = request_id
        exc = error_from_body(error, status)
    if isinstance(exc, RateLimited) and (delay := _retry_after(headers)) is not None:
        exc.details.setdefault("retry_after", delay)
    return exc


def error_from_close(code: int | None, reason: str = "") -> SkillwireError:
    """The exception a WebSocket close stands for: 44xx are final, the rest are drops."""
    cls = _CLOSE_ERRORS.get(code or 0)
    if cls is not None:
        return cls(reason or None, details={"close_code": code})
    text = f"WebSocket closed ({code or 'abnormally'}{': ' + reason if reason else ''})"
    return TransportError(text, details={"close_code": code, "reason": reason})


def undecodable(what: str, exc: Exception) -> SkillwireError:
    """A body or frame from the server that breaks the contract."""
    return InternalError(
        f"could not decode {what} from the server: {exc}", details={"reason": "undecodable"}
    )


@contextlib.contextmanager
def map_httpx_exceptions() -> Iterator[None]:
    """Translate httpx's exceptions into the transport branch (the only place that does)."""
    try:
        yield
    except httpx.TimeoutException as exc:
        connected = not isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout))
        raise TransportTimeout(
            f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
            details={"reason": type(exc).__name__},
            connected=connected,
        ) from exc
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise TransportUnavailable(str(exc), details={"reason": type(exc).__name__}) from exc
    except httpx.TransportError as exc:
        raise TransportError(
            f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
            details={"reason": type(exc).__name__},
            connected=not isinstance(exc, httpx.ConnectError),
        ) from exc


@contextlib.contextmanager
def map_ws_exceptions(*, opening: bool = False) -> Iterator[None]:
    """Translate websockets' (and the socket's) exceptions; ``opening`` during the handshake.

    A handshake the server (or a proxy) refuses with a 4xx, or answers with something that
    is not a WebSocket upgrade, makes the transport unavailable; a 5xx or 429 is temporary.
    """
    try:
        yield
    except InvalidStatus as exc:
        status = exc.response.status_code
        details = {"reason": "InvalidStatus", "http_status": status}
        message = f"WebSocket upgrade refused with HTTP {status}"
        if status >= 500 or status == 429:
            raise TransportError(message, details=details) from exc
        raise TransportUnavailable(message, details=details) from exc
    except (InvalidHandshake, InvalidURI) as exc:
        raise TransportUnavailable(
            f"WebSocket handshake failed: {exc}", details={"reason": type(exc).__name__}
        ) from exc
    except ConnectionClosed as exc:
        close = exc.rcvd
        raise error_from_close(
            close.code if close else None, close.reason if close else ""
        ) from exc
    except TimeoutError as exc:
        if opening:  # e.g. a proxy that holds the upgrade: another channel may get through
            raise TransportUnavailable(
                "WebSocket handshake timed out", details={"reason": "open_timeout"}
            ) from exc
        raise TransportTimeout("timed out", details={"reason": "TimeoutError"}) from exc
    except OSError as exc:
        raise TransportError(
            f"{type(exc).__name__}: {exc}",
            details={"reason": type(exc).__name__},
            connected=not opening,
        ) from exc
