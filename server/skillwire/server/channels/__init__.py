"""Streaming channels: SSE, NDJSON and WebSocket over the backbone's event logs."""

from __future__ import annotations

from ._routes import channel_routes
from ._streams import EventStreamResponse, stream_response
from ._subscription import SlowConsumer, Subscription
from ._websocket import WS_PATH, websocket_endpoint, websocket_refused
from ._workers import WORKERS_WS_PATH, workers_endpoint

__all__ = [
    "WORKERS_WS_PATH",
    "WS_PATH",
    "EventStreamResponse",
    "SlowConsumer",
    "Subscription",
    "channel_routes",
    "stream_response",
    "websocket_endpoint",
    "websocket_refused",
    "workers_endpoint",
]
