"""JSON responses encoded with msgspec, and the error envelope."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.responses import Response

from skillwire.protocol import SkillwireError, Unauthorized, encode, error_envelope

__all__ = ["JSONResponse", "error_response"]


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return encode(content)


def error_response(
    exc: SkillwireError, request_id: str | None, headers: Mapping[str, str] | None = None
) -> Response:
    all_headers = dict(headers or {})
    if isinstance(exc, Unauthorized):
        all_headers.setdefault("WWW-Authenticate", "Bearer")
    return Response(
        error_envelope(exc.code, exc.message, exc.details, request_id),
        status_code=exc.status,
        headers=all_headers,
        media_type="application/json",
    )
