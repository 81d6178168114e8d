"""Browser tests: Debian's Chromium driven by Playwright for Python, against a real server.

Never a browser download: Playwright starts the system's ``chromium`` through
``executable_path``. Tests that need the browser are skipped, with the reason, where there is
no Chromium binary (``scripts/test`` installs Debian's ``chromium`` when it runs as root) or
no Playwright. Screenshots go to ``artifacts/screenshots/`` (git-ignored).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunningServer, scaled

from .helpers import DemoPage, PageLog

CHROMIUM = os.environ.get("SKILLWIRE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


def _chromium_missing() -> str | None:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        found = shutil.which("chromium")
        hint = f" (found {found}; set SKILLWIRE_CHROMIUM)" if found else ""
        return (
            f"no Chromium at {CHROMIUM}{hint}: install Debian's chromium "
            "(`apt-get install chromium`; scripts/test does so when run as root)"
        )
    return None


@pytest.fixture(params=["memory"])
def backbone(request: pytest.FixtureRequest) -> str:
    """Page and REST tests run on the memory backbone; tests whose streams a backbone could
    change say ``@every_backbone`` (helpers) to run on each."""
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per test module (module scope keeps Playwright's own event
    loop from living on while other modules' asyncio tests run)."""
    if (reason := _chromium_missing()) is not None:
        pytest.skip(reason)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed: pip install -e '.[dev]'")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page_log() -> PageLog:
    """What the test's page requested (HTTP and WebSocket URLs) and the errors it threw."""
    return PageLog()


@pytest.fixture
def page(browser: Any, page_log: PageLog) -> Iterator[Any]:
    """A fresh page in its own context (storage, cache), logged into ``page_log``; a test
    fails when the page throws an uncaught error."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.set_default_timeout(scaled(15) * 1000)
    tab = context.new_page()
    page_log.attach(tab)
    try:
        yield tab
        assert not page_log.page_errors, page_log.page_errors
    finally:
        context.close()


@pytest.fixture
def demo(page: Any, page_log: PageLog, server: RunningServer) -> DemoPage:
    """The demo page of a server with the demo app and the test keys (not yet opened)."""
    return DemoPage(page, server, page_log)


@pytest.fixture
def screenshot(page: Any) -> Any:
    """Save a full-page screenshot as artifacts/screenshots/<name>.png."""

    def take(name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
