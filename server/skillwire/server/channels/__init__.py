"""Streaming channels: SSE, NDJSON and WebSocket over the backbone's event logs."""

from __future__ import annotations

from starlette.routing import BaseRoute

__all__ = ["channel_routes"]


def channel_routes() -> list[BaseRoute]:
    return []
