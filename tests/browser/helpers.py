"""Driving the demo page and the client module from tests: the page's log, the page itself."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conftest import ADMIN_KEY, RunningServer, scaled

__all__ = ["TEST_KEYS", "DemoPage", "PageLog", "assert_exactly_once", "every_backbone"]

# For tests whose event streams depend on the backbone (delivery, resume, cancel): run on each.
every_backbone = pytest.mark.parametrize("backbone", ["memory", "redis"], indirect=True)

TEST_KEYS = (ADMIN_KEY, "sk_test_user", "sk_test_other", "sk_test_scoped", "sk_test_reader")


@dataclass
class PageLog:
    """Every URL a page asked for (HTTP and WebSocket), and every uncaught error it threw."""

    requests: list[str] = field(default_factory=list)
    websockets: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("websocket", lambda ws: self.websockets.append(ws.url))
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))

    def urls(self) -> list[str]:
        return [*self.requests, *self.websockets]

    def event_streams(self) -> list[str]:
        """The EventSource URLs, in the order they were opened."""
        return [url for url in self.requests if "/events?" in url]

    def assert_no_key_in_urls(self) -> None:
        for url in self.urls():
            for key in TEST_KEYS:
                assert key not in url, f"a key went into a URL: {url}"


def assert_exactly_once(events: list[dict[str, Any]]) -> None:
    """The events are seq 1..N, each exactly once, in order, ending with a terminal one."""
    seqs = [event["seq"] for event in events]
    assert seqs == list(range(1, len(seqs) + 1)), seqs
    assert events[-1]["type"].startswith("task.")
    assert events[-1]["data"]["last_seq"] == seqs[-1]


class DemoPage:
    """The demo page at ``/`` as a person would use it."""

    def __init__(self, page: Any, server: RunningServer, log: PageLog) -> None:
        self.page = page
        self.server = server
        self.log = log

    def open(self, key: str | None = ADMIN_KEY, *, websocket: bool = True) -> DemoPage:
        """Open the page with the key in the URL fragment and wait for the skill list."""
        self.page.goto(self.server.url + "/" + (f"#key={key}" if key else ""))
        if not websocket:
            self.page.check("#no-ws")
        if key:
            self.page.wait_for_selector("#skill option", state="attached")
        return self

    def choose(self, skill: str) -> None:
        self.page.select_option("#skill", skill)

    def set_requests(self, *requests: dict[str, Any]) -> None:
        """Fill one row per sub-request, adding and removing rows as needed."""
        rows = self.page.locator("#requests li")
        while rows.count() < len(requests):
            self.page.click("#add-request")
        while rows.count() > len(requests):
            rows.last.locator("button.remove").click()
        for i, request in enumerate(requests):
            rows.nth(i).locator("input").fill(json.dumps(request))

    def run(self) -> None:
        self.page.click("#run")

    def wait_for_status(self, *statuses: str, timeout: float = 15) -> str:
        """Wait until the task's status is one of ``statuses``; return it."""
        selector = ", ".join(f"#task-section[data-status={status}]" for status in statuses)
        self.page.wait_for_selector(selector, timeout=scaled(timeout) * 1000)
        status: str = self.page.get_attribute("#task-section", "data-status")
        return status

    def wait_for_events(self, count: int) -> None:
        self.page.wait_for_function(
            f"window.__skillwire.events.length >= {count}", timeout=scaled(15) * 1000
        )

    def events(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = self.page.evaluate("window.__skillwire.events")
        return events

    def statuses(self) -> list[dict[str, Any]]:
        statuses: list[dict[str, Any]] = self.page.evaluate("window.__skillwire.statuses")
        return statuses

    def logged_seqs(self) -> list[int]:
        """The seqs shown in the page's event log, top to bottom."""
        values = self.page.eval_on_selector_all("#events li", "els => els.map(e => e.dataset.seq)")
        return [int(value) for value in values]

    def transport(self) -> str:
        value: str = self.page.get_attribute("#transport", "data-transport")
        return value

    def cards(self) -> list[dict[str, Any]]:
        """Per sub-request card: status, progress (0..1), the percentage shown, outputs."""
        cards: list[dict[str, Any]] = self.page.eval_on_selector_all(
            "#cards li.card",
            """els => els.map(e => ({
                status: e.dataset.status,
                progress: e.querySelector('progress').value,
                percent: e.querySelector('.pct').textContent,
                outputs: [...e.querySelectorAll('.outputs li')].map(o => o.textContent),
            }))""",
        )
        return cards
