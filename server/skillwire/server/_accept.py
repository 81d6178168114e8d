"""The ``Accept`` header: how much a client wants one exact media type (RFC 9110 q-values)."""

from __future__ import annotations

__all__ = ["accept_quality"]


def accept_quality(accept: str, media_type: str) -> float:
    """The q-value ``accept`` gives ``media_type`` when it names it exactly, else 0.

    Wildcards (``*/*``, ``text/*``) are not matches: a browser's ``*/*`` must not turn a plain
    call into a stream. ``text/event-stream;q=0`` means "not this", so it is 0 like an absent
    type; a q that is not a number counts as 1 (the client did name the type).
    """
    best = 0.0
    for item in accept.split(","):
        name, *params = item.split(";")
        if name.strip().lower() != media_type:
            continue
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                quality = _q_value(value.strip())
        best = max(best, quality)
    return best


def _q_value(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        return 1.0
    return min(max(value, 0.0), 1.0) if value == value else 1.0  # NaN counts as unparseable
