"""The HTTP routes' view of authentication: the runtime's keys and tickets, bound.

The credentials themselves are read in ``auth`` (``auth/_credentials.py``), the one place.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from .. import auth
from .._runtime import Runtime, runtime_of
from ..auth import Permission, Principal

__all__ = ["authenticate", "require", "runtime_of"]


def _tickets(runtime: Runtime, allow_ticket: bool) -> auth.Tickets | None:
    return runtime.backbone if allow_ticket else None


async def authenticate(conn: HTTPConnection, *, allow_ticket: bool = False) -> Principal:
    runtime = runtime_of(conn)
    return await auth.authenticate(conn, runtime.keys, tickets=_tickets(runtime, allow_ticket))


async def require(
    conn: HTTPConnection, permission: Permission, *, allow_ticket: bool = False
) -> Principal:
    runtime = runtime_of(conn)
    tickets = _tickets(runtime, allow_ticket)
    return await auth.require(conn, runtime.keys, permission, tickets=tickets)
