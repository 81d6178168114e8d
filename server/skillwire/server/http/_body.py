"""Reading request bodies within the size limit, also when no Content-Length is sent."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from skillwire.protocol import BadRequest, PayloadTooLarge, decode_json

__all__ = ["read_json"]


async def read_json(request: Request, limit: int) -> Any:
    """The request's JSON body: 413 past ``limit`` bytes, 400 when malformed."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest("Content-Length is not a number")
        if int(declared) > limit:
            raise PayloadTooLarge(
                f"body of {declared} bytes is over the limit of {limit}", details={"limit": limit}
            )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(
                f"body is over the limit of {limit} bytes", details={"limit": limit}
            )
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body:
        raise BadRequest("a JSON body is required")
    return decode_json(body)
