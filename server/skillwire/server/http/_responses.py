"""JSON responses encoded with msgspec, and the error envelope."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.responses import Response

from skillwire.protocol import SkillwireError, Unauthorized, encode, error_envelope

from .._links import is_openai_path
from ..llm._openai import openai_error_type

__all__ = ["JSONResponse", "error_response", "is_openai_path", "openai_error_envelope"]


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return encode(content)


def openai_error_envelope(exc: SkillwireError, request_id: str | None) -> bytes:
    """The envelope plus OpenAI's ``type`` and ``param`` (the field at fault, if one is)."""
    kind = openai_error_type(exc.status)
    field = exc.details.get("field") if isinstance(exc.details, dict) else None
    error = {
        "code": exc.code,
        "message": exc.message,
        "details": exc.details,
        "request_id": request_id,
        "type": kind,
        "param": field if isinstance(field, str) else None,
    }
    return encode({"error": error})


def error_response(
    exc: SkillwireError,
    request_id: str | None,
    headers: Mapping[str, str] | None = None,
    *,
    openai: bool = False,
) -> Response:
    all_headers = dict(headers or {})
    if isinstance(exc, Unauthorized):
        all_headers.setdefault("WWW-Authenticate", "Bearer")
    body = (
        openai_error_envelope(exc, request_id)
        if openai
        else error_envelope(exc.code, exc.message, exc.details, request_id)
    )
    return Response(
        body, status_code=exc.status, headers=all_headers, media_type="application/json"
    )
