"""Who is calling, from the request's credentials; what they may do."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from skillwire.protocol import Forbidden, Unauthorized

from .._runtime import Runtime
from ..auth import Permission, Principal

__all__ = ["credentials_of", "require", "runtime_of"]


def runtime_of(conn: HTTPConnection) -> Runtime:
    runtime: Runtime = conn.app.state.skillwire
    return runtime


def credentials_of(conn: HTTPConnection) -> str | None:
    """The key from ``Authorization: Bearer`` or ``X-API-Key`` (never from the URL)."""
    header = conn.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return ""
    return conn.headers.get("x-api-key")


def _remember(conn: HTTPConnection, principal: Principal) -> Principal:
    conn.scope.setdefault("state", {})["principal"] = principal.name
    return principal


async def authenticate(conn: HTTPConnection, *, allow_ticket: bool = False) -> Principal:
    runtime = runtime_of(conn)
    key = credentials_of(conn)
    if key:
        principal = runtime.keys.lookup(key)
        if principal is None:
            raise Unauthorized("invalid API key")
        return _remember(conn, principal)
    if key is None and allow_ticket and (ticket := conn.query_params.get("ticket")):
        name = await runtime.backbone.take_ticket(ticket)
        principal = runtime.keys.by_name(name) if name else None
        if principal is None:
            raise Unauthorized("invalid, expired or already used ticket")
        return _remember(conn, principal)
    raise Unauthorized("credentials required: Authorization: Bearer <key> or X-API-Key")


async def require(
    conn: HTTPConnection, permission: Permission, *, allow_ticket: bool = False
) -> Principal:
    principal = await authenticate(conn, allow_ticket=allow_ticket)
    if not principal.has(permission):
        raise Forbidden(
            f"role {principal.role!r} lacks the {permission.value!r} permission",
            details={"permission": permission.value},
        )
    return principal
