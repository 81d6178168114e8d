"""Who is calling, from a request's or a WebSocket handshake's credentials.

The one place that reads them: ``Authorization: Bearer <key>`` or ``X-API-Key`` (never a key
in the URL), or a single-use ``?ticket=`` where a browser cannot send headers. The HTTP
routes, the streams, the WebSocket handshake and the rate limiter all ask here.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any, Protocol

from starlette.requests import HTTPConnection

from skillwire.protocol import Unauthorized

from ._keys import KeyStore
from ._permissions import Permission
from ._principal import Principal

__all__ = [
    "Tickets",
    "authenticate",
    "authenticate_key",
    "credentials_of",
    "offers_credentials",
    "require",
]


class Tickets(Protocol):
    """Where tickets are redeemed (the backbone): the name a ticket was issued to, once."""

    async def take_ticket(self, ticket: str) -> str | None: ...


def credentials_of(headers: Mapping[str, str]) -> str | None:
    """The key from ``Authorization: Bearer`` or ``X-API-Key``; ``""`` for an Authorization
    header of another scheme (refused, never ignored); None when neither is sent."""
    header = headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return ""
    return headers.get("x-api-key")


def offers_credentials(conn: HTTPConnection) -> bool:
    """True when the connection carries any credential (a key or a ticket) to check."""
    headers = conn.headers
    return bool(
        headers.get("authorization") or headers.get("x-api-key") or conn.query_params.get("ticket")
    )


def _remember(scope: MutableMapping[str, Any], principal: Principal) -> Principal:
    scope.setdefault("state", {})["principal"] = principal.name  # for the access log
    return principal


def authenticate_key(scope: MutableMapping[str, Any], key: str | None, keys: KeyStore) -> Principal:
    """The principal ``key`` (as ``credentials_of`` read it) names; else Unauthorized (401).
    For an endpoint that holds the raw ASGI scope, no ``Request`` (the quick call's)."""
    if key:
        principal = keys.lookup(key)
        if principal is None:
            raise Unauthorized("invalid API key")
        return _remember(scope, principal)
    raise Unauthorized("credentials required: Authorization: Bearer <key> or X-API-Key")


async def authenticate(
    conn: HTTPConnection, keys: KeyStore, *, tickets: Tickets | None = None
) -> Principal:
    """The principal the connection's key (or, given ``tickets``, its ticket) names; else
    Unauthorized (401)."""
    key = credentials_of(conn.headers)
    if key is None and tickets is not None and (ticket := conn.query_params.get("ticket")):
        name = await tickets.take_ticket(ticket)
        principal = keys.by_name(name) if name else None
        if principal is None:
            raise Unauthorized("invalid, expired or already used ticket")
        return _remember(conn.scope, principal)
    return authenticate_key(conn.scope, key, keys)


async def require(
    conn: HTTPConnection,
    keys: KeyStore,
    permission: Permission,
    *,
    tickets: Tickets | None = None,
) -> Principal:
    """``authenticate``, then Forbidden (403) unless the principal has ``permission``."""
    principal = await authenticate(conn, keys, tickets=tickets)
    return principal.require(permission)
