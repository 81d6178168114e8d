"""The server's browser files (``/`` and ``/skillwire.js``) and CORS, over HTTP (no browser)."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path

import pytest

from tests.conftest import RunningServer

ROOT = Path(__file__).resolve().parents[2]
PACKAGED = ROOT / "server" / "skillwire" / "server" / "static"
CLIENT = ROOT / "clients" / "js" / "skillwire.js"


def test_demo_page_is_served_without_credentials(server: RunningServer) -> None:
    """GET / answers the demo page as UTF-8 HTML, with no key."""
    with server.client(key=None) as http:
        response = http.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-request-id"]
    assert 'from "./skillwire.js"' in response.text
    assert response.content == (PACKAGED / "index.html").read_bytes()


def test_client_module_is_served_as_javascript(server: RunningServer) -> None:
    """GET /skillwire.js answers the module as application/javascript, with no key."""
    with server.client(key=None) as http:
        response = http.get("/skillwire.js")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/javascript; charset=utf-8"
    assert response.content == CLIENT.read_bytes()
    assert b"export class SkillwireClient" in response.content


@pytest.mark.parametrize("path", ["/", "/skillwire.js"])
def test_unchanged_files_revalidate_with_304(server: RunningServer, path: str) -> None:
    """A strong ETag with Cache-Control: no-cache; If-None-Match answers 304, HEAD works."""
    with server.client(key=None) as http:
        first = http.get(path)
        etag = first.headers["etag"]
        again = http.get(path, headers={"If-None-Match": etag})
        head = http.head(path)
    assert first.headers["cache-control"] == "no-cache"
    assert etag.startswith('"')
    assert again.status_code == 304
    assert again.content == b""
    assert head.status_code == 200
    assert head.headers["etag"] == etag


def test_repository_client_is_the_packaged_file() -> None:
    """clients/js/skillwire.js is a link to the package's copy: one source, never two."""
    assert CLIENT.is_symlink()
    assert CLIENT.resolve() == (PACKAGED / "skillwire.js").resolve()
    packaged = resources.files("skillwire.server").joinpath("static", "skillwire.js")
    assert packaged.read_bytes() == CLIENT.read_bytes()


def test_no_cors_headers_by_default(server: RunningServer) -> None:
    """Without cors.allow_origins, no Access-Control-* header is sent."""
    with server.client() as http:
        response = http.get("/api/v1/apps", headers={"Origin": "https://app.example"})
    assert response.status_code == 200
    assert not [name for name in response.headers if name.startswith("access-control-")]


def test_cors_allows_the_configured_origins(
    server_factory: Callable[..., RunningServer],
) -> None:
    """Configured origins pass preflight with skillwire's headers; X-Request-ID is exposed."""
    origin = "https://app.example"
    server = server_factory({"cors": {"allow_origins": [origin]}})
    preflight_headers = {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": (
            "authorization, x-api-key, content-type, last-event-id, idempotency-key, prefer"
        ),
    }
    with server.client(key=None) as anonymous, server.client() as http:
        preflight = anonymous.options("/api/v1/apps/demo/echo", headers=preflight_headers)
        other = anonymous.options(
            "/api/v1/apps/demo/echo",
            headers={**preflight_headers, "Origin": "https://evil.example"},
        )
        answer = http.get("/api/v1/apps", headers={"Origin": origin})
        refused = anonymous.get("/api/v1/apps", headers={"Origin": origin})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == origin
    allowed = preflight.headers["access-control-allow-headers"].lower()
    for header in ("authorization", "x-api-key", "last-event-id", "idempotency-key", "prefer"):
        assert header in allowed
    assert "DELETE" in preflight.headers["access-control-allow-methods"]
    assert other.status_code == 400
    assert "access-control-allow-origin" not in other.headers
    assert answer.headers["access-control-allow-origin"] == origin
    assert "x-request-id" in answer.headers["access-control-expose-headers"].lower()
    # Errors carry CORS headers too, so a page can read the error envelope.
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == origin
