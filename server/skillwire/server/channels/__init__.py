"""Streaming channels: SSE, NDJSON and WebSocket over the backbone's event logs."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route, WebSocketRoute

from ._streams import EventStreamResponse, events_endpoint, stream_response
from ._subscription import SlowConsumer, Subscription
from ._tickets import issue_ticket
from ._websocket import WS_PATH, websocket_endpoint
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
    "workers_endpoint",
]


def channel_routes() -> list[BaseRoute]:
    return [
        Route("/api/v1/tasks/{task_id}/events", events_endpoint, methods=["GET"]),
        Route("/api/v1/tickets", issue_ticket, methods=["POST"]),
        # Connections normally take the shortcut in http/_app; the route is what a mounted or
        # wrapped app that bypasses it, and the route table, see.
        WebSocketRoute(WS_PATH, websocket_endpoint),
        WebSocketRoute(WORKERS_WS_PATH, workers_endpoint),
    ]
