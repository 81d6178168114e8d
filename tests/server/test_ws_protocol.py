"""The WebSocket protocol class `skillwire serve` gives uvicorn."""

from __future__ import annotations

import asyncio
from typing import Any

from websockets.protocol import State
from websockets.server import ServerProtocol

from skillwire.server._cli import uvicorn_config
from skillwire.server._config import load_config
from skillwire.server._ws_protocol import WebSocketProtocol


class _Transport:
    closed = False

    def close(self) -> None:
        self.closed = True

    def write(self, data: bytes) -> None:
        raise AssertionError("nothing is written to a connection that is already closing")


def test_shutdown_of_a_connection_whose_client_is_closing_just_closes_it() -> None:
    """uvicorn's shutdown raised InvalidState for a WebSocket whose client's close came first."""
    connection: Any = WebSocketProtocol.__new__(WebSocketProtocol)
    connection.ping_timer = connection.pong_timer = connection.pending_ping_payload = None
    connection.close_sent = False
    connection.handshake_complete = True
    connection.queue = asyncio.Queue()
    connection.conn = ServerProtocol()
    connection.conn.state = State.CLOSING  # the client's close frame was received
    connection.transport = _Transport()
    connection.shutdown()
    assert connection.transport.closed


def test_serve_runs_websockets_on_this_protocol() -> None:
    """`skillwire serve` (and the test servers, through uvicorn_config) use the class above."""
    config = uvicorn_config(object(), load_config(environ={}))
    assert config.ws is WebSocketProtocol
