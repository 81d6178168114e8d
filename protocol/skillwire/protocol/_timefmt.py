"""RFC 3339 timestamps in UTC with microseconds, the only time format on the wire."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["format_time", "parse_time"]


def format_time(timestamp: float) -> str:
    """``2026-11-23T12:00:00.123456Z`` for a POSIX timestamp (always six fraction digits)."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> float:
    """The POSIX timestamp of an RFC 3339 string (``Z`` or an offset)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
