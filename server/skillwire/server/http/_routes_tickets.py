"""``POST /api/v1/tickets``: a short-lived, single-use credential for browser URLs."""

from __future__ import annotations

import secrets

from starlette.requests import Request
from starlette.responses import Response

from skillwire.protocol import Ticket

from ..auth import Permission
from ._auth import require, runtime_of
from ._responses import JSONResponse

__all__ = ["TICKET_TTL", "issue_ticket"]

TICKET_TTL = 30


async def issue_ticket(request: Request) -> Response:
    principal = await require(request, Permission.READ)
    ticket = "tkt_" + secrets.token_urlsafe(24)
    await runtime_of(request).backbone.put_ticket(ticket, principal.name, TICKET_TTL)
    return JSONResponse(Ticket(ticket=ticket, expires_in=TICKET_TTL))
