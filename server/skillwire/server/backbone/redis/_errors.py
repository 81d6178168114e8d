"""Redis errors into the gateway's: ``translated`` is where they become BackboneUnavailable.

Every module of the Redis backbone that sends commands runs them inside it (or is called by
the backbone inside it), so a Redis or socket error leaves the backbone as a 503, once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from redis.exceptions import RedisError, ResponseError

from skillwire.protocol import BackboneUnavailable, IllegalTransition

__all__ = ["translate", "translated"]


@contextlib.asynccontextmanager
async def translated() -> AsyncIterator[None]:
    """Redis and socket errors leave this module as BackboneUnavailable (503), once.

    redis-py can finish a command it was cancelled in and return normally, swallowing the
    cancellation; the caller would then wait forever where it should have stopped. A
    cancellation still pending when the command returns is raised here.
    """
    try:
        yield
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError
    except (RedisError, OSError, RuntimeError) as exc:
        translation = translate(exc)
        if translation is exc:
            raise
        raise translation from exc


def translate(exc: BaseException) -> BaseException:
    """What ``translated`` raises for ``exc`` (``exc`` itself when it is not Redis's); for a
    reply that settles a future rather than a raise in a coroutine."""
    if isinstance(exc, ResponseError):
        if str(exc).startswith("ILLEGAL"):
            translation: BaseException = IllegalTransition(str(exc)[8:])
        else:
            translation = BackboneUnavailable(f"redis error: {exc}")
    # uvloop refuses a write on a transport Redis has just closed (a CLIENT KILL during the
    # connection's handshake) with a RuntimeError, not an OSError: it was a 500.
    elif isinstance(exc, RedisError | OSError) or (
        isinstance(exc, RuntimeError) and _CLOSED_TRANSPORT in str(exc)
    ):
        translation = BackboneUnavailable(f"redis unavailable: {exc}")
    else:
        return exc
    translation.__cause__ = exc
    return translation


_CLOSED_TRANSPORT = "the handler is closed"
