"""/docs in Chromium: Swagger UI from the server itself, a key typed once, "Try it out" works."""

from __future__ import annotations

from typing import Any

from tests.conftest import ADMIN_KEY, READER_KEY, RunningServer

from .helpers import PageLog


def _open_with_key(page: Any, server: RunningServer, key: str) -> None:
    page.goto(server.url + "/docs")
    page.fill("#sw-key", key)
    page.click("#sw-key-form button[type=submit]")


def test_try_it_out_calls_the_api_with_the_typed_key(
    page: Any, page_log: PageLog, server: RunningServer
) -> None:
    """A key typed once renders the reference; Execute answers 200; no CDN, no key in a URL."""
    _open_with_key(page, server, ADMIN_KEY)
    operation = page.locator("#operations-default-list_apps")  # GET /api/v1/apps
    operation.locator(".opblock-summary").first.click()
    operation.locator("button.execute").click()
    status = operation.locator(".live-responses-table tr.response .response-col_status").first
    status.wait_for()
    assert status.inner_text().strip().startswith("200")
    assert '"demo"' in operation.locator(".live-responses-table .microlight").first.inner_text()
    assert all(url.startswith(server.url) for url in page_log.requests), page_log.requests
    page_log.assert_no_key_in_urls()
    assert page.evaluate("sessionStorage.getItem('skillwire.docs.key')") == ADMIN_KEY


def test_the_key_survives_a_reload(page: Any, page_log: PageLog, server: RunningServer) -> None:
    """A reload renders the reference again from the tab's sessionStorage, with no prompt."""
    _open_with_key(page, server, ADMIN_KEY)
    page.locator(".opblock").first.wait_for()
    page.reload()
    page.locator(".opblock").first.wait_for()
    assert page.locator("#sw-hint").is_hidden()
    page_log.assert_no_key_in_urls()


def test_a_key_without_docs_permission_is_told_so(page: Any, server: RunningServer) -> None:
    """A key that lacks `docs` gets the server's 403 on the page, and nothing is kept."""
    _open_with_key(page, server, READER_KEY)
    message = page.locator("#sw-message")
    message.filter(has_text="403").wait_for()
    assert "FORBIDDEN" in message.inner_text()
    assert page.locator(".opblock").count() == 0
    assert page.evaluate("sessionStorage.getItem('skillwire.docs.key')") is None
