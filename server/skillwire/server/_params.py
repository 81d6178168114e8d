"""Query-parameter and header parsing; anything malformed is a 400 BAD_REQUEST."""

from __future__ import annotations

import math
import re
from enum import StrEnum
from typing import TypeVar

from starlette.datastructures import QueryParams

from skillwire.protocol import BadRequest

__all__ = [
    "MAX_SAFE_INTEGER",
    "Prefer",
    "enum_param",
    "float_param",
    "idempotency_key",
    "int_param",
    "is_ascii_digits",
    "parse_prefer",
]

E = TypeVar("E", bound=StrEnum)
# A plain decimal in ASCII: float() would also take a sign, spaces, "1_0", "1e3" or other
# scripts' digits.
_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")


def is_ascii_digits(raw: str) -> bool:
    """``0``-``9`` only: ``str.isdigit()`` also takes other scripts' digits (Arabic-Indic,
    full-width) and ``int()`` a sign or spaces, which no client of ours sends."""
    return raw.isascii() and raw.isdigit()


def int_param(
    params: QueryParams, name: str, default: int, *, low: int = 0, high: int | None = None
) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if not is_ascii_digits(raw):
        raise BadRequest(
            f"query parameter {name!r} must be a non-negative integer", details={"field": name}
        )
    value = int(raw)
    if value < low or (high is not None and value > high):
        bounds = f"{low}..{high}" if high is not None else f">= {low}"
        raise BadRequest(f"query parameter {name!r} must be {bounds}", details={"field": name})
    return value


def float_param(params: QueryParams, name: str) -> float | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    value = float(raw) if _DECIMAL.fullmatch(raw) else math.nan
    if not math.isfinite(value) or value < 0:
        raise BadRequest(
            f"query parameter {name!r} must be a non-negative number", details={"field": name}
        )
    return value


def enum_param(params: QueryParams, name: str, enum: type[E]) -> E | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return enum(raw)
    except ValueError:
        allowed = [e.value for e in enum]
        raise BadRequest(
            f"query parameter {name!r} must be one of {allowed}",
            details={"field": name, "allowed": allowed},
        ) from None


# The largest integer every JSON reader holds exactly (JavaScript's Number.MAX_SAFE_INTEGER):
# past it, a count or position a client sends is refused rather than echoed back inexactly,
# or handed to Redis, whose ranges take signed 64-bit numbers only.
MAX_SAFE_INTEGER = 2**53 - 1

MAX_IDEMPOTENCY_KEY = 255  # characters; a key is stored for the whole retention window


def idempotency_key(header: str | None) -> str | None:
    """The ``Idempotency-Key`` header: 1 to 255 characters, else 400 (a key is kept for the
    retention window, so its size is bounded like everything else a client makes us store)."""
    if header is None:
        return None
    if not 0 < len(header) <= MAX_IDEMPOTENCY_KEY:
        raise BadRequest(
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters long",
            details={"field": "Idempotency-Key", "limit": MAX_IDEMPOTENCY_KEY},
        )
    return header


class Prefer:
    __slots__ = ("respond_async", "wait")

    def __init__(self, respond_async: bool = False, wait: float | None = None) -> None:
        self.respond_async = respond_async
        self.wait = wait


def parse_prefer(header: str | None) -> Prefer:
    """``Prefer: respond-async`` and ``Prefer: wait=N`` (RFC 7240); unknown preferences pass."""
    prefer = Prefer()
    if not header:
        return prefer
    for token in header.replace(";", ",").split(","):
        name, _, value = token.strip().partition("=")
        name = name.strip().lower()
        if name == "respond-async":
            prefer.respond_async = True
        elif name == "wait":
            try:
                wait = float(value.strip().strip('"'))
            except ValueError:
                raise BadRequest("Prefer: wait=N needs a number of seconds") from None
            if not math.isfinite(wait) or wait < 0:
                raise BadRequest("Prefer: wait=N needs a non-negative number of seconds")
            prefer.wait = wait
    return prefer
