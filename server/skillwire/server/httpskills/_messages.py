"""An HTTP skill's answer, read as the worker messages it carries (NDJSON lines or SSE data)."""

from __future__ import annotations

from collections.abc import AsyncIterator

__all__ = ["ndjson_lines", "sse_data"]


async def _lines(chunks: AsyncIterator[str]) -> AsyncIterator[str]:
    buffer = ""
    async for chunk in chunks:
        buffer += chunk
        *lines, buffer = buffer.split("\n")
        for line in lines:
            yield line.removesuffix("\r")
    if buffer:
        yield buffer.removesuffix("\r")


async def ndjson_lines(chunks: AsyncIterator[str]) -> AsyncIterator[str]:
    """The non-empty lines of an NDJSON body."""
    async for line in _lines(chunks):
        if line.strip():
            yield line


async def sse_data(chunks: AsyncIterator[str]) -> AsyncIterator[str]:
    """The data of each event of a text/event-stream body (event names and ids ignored)."""
    data: list[str] = []
    async for line in _lines(chunks):
        if not line:
            if data:
                yield "\n".join(data)
                data = []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        yield "\n".join(data)
