"""RFC 3339 timestamps in UTC with microseconds, the only time format on the wire."""

from __future__ import annotations

import time
from datetime import datetime

__all__ = ["format_time", "parse_time"]

# Every event carries a timestamp: the date and time of day change once a second, so they
# are formatted once a second and the microseconds appended (strftime costs more than the
# rest of an event's encoding).
_second = -1
_prefix = ""


def format_time(timestamp: float) -> str:
    """``2026-11-23T12:00:00.123456Z`` for a POSIX timestamp (always six fraction digits)."""
    global _second, _prefix
    micros = round(timestamp * 1_000_000)
    second, fraction = divmod(micros, 1_000_000)
    if second != _second:
        _prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second = second
    return f"{_prefix}.{fraction:06d}Z"


def parse_time(text: str) -> float:
    """The POSIX timestamp of an RFC 3339 string (``Z`` or an offset)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
