"""uvicorn's sans-I/O WebSocket protocol, with a shutdown that survives a close under way.

When the server shuts down, uvicorn asks every connection to close with 1012. A WebSocket whose
client sent its close frame a moment before (the connection is "closing", our reply not sent
yet) makes websockets raise ``InvalidState`` from uvicorn's ``shutdown``, which escapes the
server's own shutdown: during a drain, one client leaving at the wrong moment would end it with
a traceback. Here such a connection is simply closed.
"""

from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState

__all__ = ["WebSocketProtocol"]


class WebSocketProtocol(WebSocketsSansIOProtocol):
    def shutdown(self) -> None:
        try:
            super().shutdown()
        except InvalidState:  # the client's close frame came first: nothing left to say
            self.transport.close()
