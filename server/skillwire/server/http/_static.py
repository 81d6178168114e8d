"""The browser half: the demo page at ``/`` and the client module at ``/skillwire.js``.

Both are package data (``skillwire/server/static/``), served without authentication: they
hold no secret, and the page asks for the key itself. Responses carry a strong ``ETag`` and
``Cache-Control: no-cache``, so browsers revalidate and get ``304`` while nothing changed.
"""

from __future__ import annotations

import hashlib
from importlib import resources

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

__all__ = ["client_module", "demo_page"]

_PACKAGE = "skillwire.server"
_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _read(name: str) -> bytes:
    return resources.files(_PACKAGE).joinpath("static", name).read_bytes()


async def _serve(request: Request, name: str, media_type: str) -> Response:
    body = await anyio.to_thread.run_sync(_read, name)
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {**_HEADERS, "ETag": etag}
    if etag in {tag.strip() for tag in request.headers.get("if-none-match", "").split(",")}:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


async def demo_page(request: Request) -> Response:
    """``GET /``: the demo page (lists skills, calls one, follows it live)."""
    return await _serve(request, "index.html", "text/html; charset=utf-8")


async def client_module(request: Request) -> Response:
    """``GET /skillwire.js``: the browser client, an ES module."""
    return await _serve(request, "skillwire.js", "application/javascript; charset=utf-8")
