"""Everything a client is configured with, in one frozen dataclass shared by its layers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from ._backoff import Backoff

__all__ = ["DEFAULT_TRANSPORTS", "Settings", "StreamTransport", "TransportName"]

StreamTransport = Literal["ws", "sse", "ndjson", "poll"]
TransportName = Literal["auto", "ws", "sse", "ndjson", "poll"]
DEFAULT_TRANSPORTS: tuple[StreamTransport, ...] = ("ws", "sse", "ndjson", "poll")


@dataclass(frozen=True)
class Settings:
    base_url: str
    api_key: str | None = None
    timeout: float = 30.0
    retries: int = 2
    backoff: Backoff = field(default_factory=Backoff)
    heartbeat_interval: float = 15.0
    poll_wait: float = 30.0
    max_reconnects: int = 10
    transports: tuple[StreamTransport, ...] = DEFAULT_TRANSPORTS
    ws_url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def read_timeout(self) -> float:
        """A stream silent for three heartbeat intervals is a dropped connection."""
        return 3 * self.heartbeat_interval

    @property
    def websocket_url(self) -> str:
        if self.ws_url is not None:
            return self.ws_url
        base = self.base_url.rstrip("/")
        if base.startswith("https://"):
            base = "wss://" + base[len("https://") :]
        elif base.startswith("http://"):
            base = "ws://" + base[len("http://") :]
        return base + "/api/v1/ws"

    def auth_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers
