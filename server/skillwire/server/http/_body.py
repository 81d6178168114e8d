"""Reading request bodies within the size limit, also when no Content-Length is sent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive

from skillwire.protocol import BadRequest, PayloadTooLarge, decode_json

__all__ = ["read_json", "read_json_from", "receive_chunks"]


async def read_json(request: Request, limit: int) -> Any:
    """The request's JSON body: 413 past ``limit`` bytes, 400 when malformed."""
    return await read_json_from(request.stream(), request.headers.get("content-length"), limit)


async def receive_chunks(receive: Receive) -> AsyncIterator[bytes]:
    """The body's chunks straight from ASGI ``receive``, as ``Request.stream`` gives them, for
    an endpoint that holds no ``Request`` (the quick call's)."""
    while True:
        message = await receive()
        if message["type"] == "http.request":
            chunk: bytes = message.get("body", b"")
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect()


async def read_json_from(chunks: AsyncIterator[bytes], declared: str | None, limit: int) -> Any:
    """The JSON in ``chunks``, whose ``Content-Length`` header is ``declared``: 413 past
    ``limit`` bytes, 400 when malformed."""
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest("Content-Length is not a number")
        if int(declared) > limit:
            raise PayloadTooLarge(
                f"body of {declared} bytes is over the limit of {limit}", details={"limit": limit}
            )
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(
                f"body is over the limit of {limit} bytes", details={"limit": limit}
            )
        parts.append(chunk)
    body = b"".join(parts)
    if not body:
        raise BadRequest("a JSON body is required")
    return decode_json(body)
