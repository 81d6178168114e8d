"""uvicorn's HTTP protocol with the limits it lacks: header time, header size, connections.

uvicorn (httptools) arms its keep-alive timer only after a response, so a connection that
never sends, or drips, its headers stays open forever; and it buffers headers of any size.
This subclass gives every request ``header_timeout`` seconds from its first byte (from the
connection's opening for the first) to finish its headers, answers ``431 HEADERS_TOO_LARGE``
past ``max_header_bytes``, and ``503 SERVICE_UNAVAILABLE`` once ``max_connections`` are open,
both in the error envelope with ``Connection: close``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from http import HTTPStatus

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from skillwire.protocol import (
    HeadersTooLarge,
    ServiceUnavailable,
    SkillwireError,
    error_envelope,
)

from .http._responses import openai_error_envelope

__all__ = ["ConnectionLimits", "limited_http_protocol"]

log = logging.getLogger("skillwire.http")


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float
    keepalive_timeout: float
    max_header_bytes: int
    max_connections: int


class _Rejected(Exception):
    """Raised from a parser callback to stop parsing and answer ``error`` instead."""

    def __init__(self, error: SkillwireError) -> None:
        super().__init__(error.message)
        self.error = error


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    limits: ConnectionLimits  # set on the subclass limited_http_protocol makes

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.timeout_keep_alive = self.limits.keepalive_timeout  # type: ignore[assignment]
        self._header_deadline: asyncio.TimerHandle | None = None
        # Bytes received since the current request began, while its headers are incomplete.
        self._header_bytes: int | None = None

    # -- the header phase --------------------------------------------------------------------
    def _begin_headers(self) -> None:
        self._header_bytes = 0
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_later(
                self.limits.header_timeout, self._headers_timed_out
            )

    def _end_headers(self) -> None:
        self._header_bytes = None
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_timed_out(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            # Debug only: thousands of slow clients must not flood the log.
            log.debug("closed a connection that sent no complete headers in time")
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._begin_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._end_headers()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_bytes is None:  # a next request on a kept-alive connection
            self._begin_headers()

    def on_headers_complete(self) -> None:
        self._end_headers()
        size = len(self.url) + sum(len(name) + len(value) for name, value in self.headers)
        if size > self.limits.max_header_bytes:
            raise _Rejected(self._too_large())
        if len(self.connections) > self.limits.max_connections:
            raise _Rejected(ServiceUnavailable("server is at its connection limit"))
        super().on_headers_complete()

    def _too_large(self) -> HeadersTooLarge:
        return HeadersTooLarge(
            f"request headers over {self.limits.max_header_bytes} bytes",
            details={"limit": self.limits.max_header_bytes},
        )

    # -- reading -----------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        # httptools buffers a header until it ends: stop once more than the limit came in.
        if self._header_bytes is not None:
            if self._header_bytes > self.limits.max_header_bytes:
                self._reject(self._too_large())
                return
            self._header_bytes += len(data)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _Rejected):
                self._reject(exc.__context__.error)
            else:
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
        except httptools.HttpParserError:
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()

    def _reject(self, error: SkillwireError) -> None:
        """Answer ``error`` in the envelope and close, unless a response is under way."""
        self._end_headers()
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:
            request_id = f"req_{random.getrandbits(64):016x}"
            # The request line came first: an OpenAI client's request gets OpenAI's fields.
            if getattr(self, "url", b"").startswith(b"/v1/"):
                body = openai_error_envelope(error, request_id)
            else:
                body = error_envelope(error.code, error.message, error.details, request_id)
            head = (
                f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}\r\n"
                "content-type: application/json\r\n"
                f"content-length: {len(body)}\r\n"
                f"x-request-id: {request_id}\r\n"
                "connection: close\r\n\r\n"
            )
            self.transport.write(head.encode("latin-1") + body)
            # One line per refused request, like the access line (no path: none was parsed).
            log.info("refused a request: %d %s", error.status, error.code)
        self.transport.close()


def limited_http_protocol(limits: ConnectionLimits) -> type[HttpToolsProtocol]:
    """The protocol class to give uvicorn (``http=``), bound to these limits."""
    return type("SkillwireHttpProtocol", (LimitedHttpToolsProtocol,), {"limits": limits})
