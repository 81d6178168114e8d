"""``/docs``: an interactive API reference (Swagger UI), served by skillwire itself (no CDN).

The page is a shell that holds nothing of the API: it asks for a key, keeps it in the tab's
sessionStorage, and fetches ``/openapi.json`` with it as the ``Authorization`` header (the
``docs`` permission applies there); every "Try it out" call sends the same header. So the
page needs no ``?ticket=``, survives a reload, and never puts a key in a URL. Swagger UI's
files come from the ``swagger-ui-bundle-v2`` package; the page, its script and style from
``skillwire/server/static/``.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from pathlib import Path

import anyio.to_thread
import swagger_ui_bundle  # type: ignore[import-untyped]  # no py.typed; one Path attribute used
from starlette.requests import Request
from starlette.responses import Response

from skillwire.protocol import NotFound

from ..auth import Permission, credentials_of
from ._auth import require

__all__ = ["docs_asset", "docs_page"]

_PACKAGE = "skillwire.server"
# Every file /docs/{name} may answer, and its media type: nothing else is reachable.
_ASSETS = {
    "swagger-ui-bundle.js": "application/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "docs.js": "application/javascript; charset=utf-8",
    "docs.css": "text/css; charset=utf-8",
}
_OURS = {"docs.js", "docs.css"}
# Swagger UI sets styles inline and shows data: images; scripts only from this server.
_PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@cache
def _file(name: str) -> tuple[bytes, str]:
    """A file's bytes and strong ETag, read once per process (package data never changes)."""
    if name in _OURS or name == "docs.html":
        body = resources.files(_PACKAGE).joinpath("static", name).read_bytes()
    else:
        body = (Path(str(swagger_ui_bundle.swagger_ui_path)) / name).read_bytes()
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


async def _serve(request: Request, name: str, media_type: str, **extra: str) -> Response:
    body, etag = await anyio.to_thread.run_sync(_file, name)
    headers = {**_HEADERS, **extra, "ETag": etag}
    if etag in {tag.strip() for tag in request.headers.get("if-none-match", "").split(",")}:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


async def docs_page(request: Request) -> Response:
    """``GET /docs``: the page. A browser opening it has no way to send a key, and the page
    holds no API data, so a request that sends no credentials and accepts HTML gets it; any
    other request is checked for the ``docs`` permission like ``/openapi.json``."""
    if credentials_of(request.headers) is not None or not _accepts_html(request):
        await require(request, Permission.DOCS)
    return await _serve(
        request, "docs.html", "text/html; charset=utf-8", **{"Content-Security-Policy": _PAGE_CSP}
    )


def _accepts_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


async def docs_asset(request: Request) -> Response:
    """``GET /docs/{name}``: Swagger UI's script and style, and the page's own."""
    name: str = request.path_params["name"]
    media_type = _ASSETS.get(name)
    if media_type is None:
        raise NotFound(f"no such file: /docs/{name}", details={"path": f"/docs/{name}"})
    return await _serve(request, name, media_type)
