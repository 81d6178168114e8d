"""The channels' routes: the event streams, the WebSocket and the workers' one (tickets are
http's)."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route, WebSocketRoute

from ._session_streams import session_events_endpoint
from ._streams import events_endpoint
from ._websocket import WS_PATH, websocket_endpoint
from ._workers import WORKERS_WS_PATH, workers_endpoint

__all__ = ["channel_routes"]


def channel_routes() -> list[BaseRoute]:
    return [
        Route("/api/v1/tasks/{task_id}/events", events_endpoint, methods=["GET"]),
        Route("/api/v1/sessions/{session_id}/events", session_events_endpoint, methods=["GET"]),
        # Connections normally take the shortcut in http/_app; the route is what a mounted or
        # wrapped app that bypasses it, and the route table, see.
        WebSocketRoute(WS_PATH, websocket_endpoint),
        WebSocketRoute(WORKERS_WS_PATH, workers_endpoint),
    ]
