"""The demo page's LLM chat panel in Chromium: streams, survives a reload, cancels."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import ADMIN_KEY, RunningServer, scaled, wait_until
from tests.llm.conftest import llm_settings
from tests.llm.upstream import FakeUpstream, Plan, running_upstream

WORDS = [f"w{i} " for i in range(30)]


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    """A fake OpenAI-compatible upstream for the module."""
    yield from running_upstream(("alpha", "beta"))


@pytest.fixture
def llm_server(
    server_factory: Callable[..., RunningServer], upstream: FakeUpstream
) -> RunningServer:
    """A server whose LLM bridge uses the fake upstream."""
    upstream.plans.clear()
    return server_factory(llm_settings(upstream))


def _open(page: Any, server: RunningServer) -> None:
    page.goto(f"{server.url}/#key={ADMIN_KEY}")
    page.wait_for_selector("#chat-section:not([hidden])")


def _status(page: Any) -> str:
    return str(page.evaluate("window.__skillwireChat.status"))


def _answer(page: Any) -> str:
    return str(page.text_content("#chat-answer") or "")


def _wait(predicate: Callable[[], bool], timeout: float = 15) -> None:
    wait_until(predicate, timeout=timeout, interval=0.05)


def test_panel_hidden_without_an_upstream(page: Any, server: RunningServer) -> None:
    """With no upstream configured the chat panel stays hidden."""
    page.goto(f"{server.url}/#key={ADMIN_KEY}")
    page.wait_for_selector("#skill option", state="attached")
    page.wait_for_load_state("networkidle")
    assert page.is_hidden("#chat-section")


def test_chat_streams_and_survives_a_reload(
    page: Any, llm_server: RunningServer, upstream: FakeUpstream, screenshot: Any
) -> None:
    """The answer streams in; a reload mid-answer shows it again and follows it to the end."""
    upstream.plan("alpha", Plan(pieces=WORDS, delay=0.08))
    _open(page, llm_server)
    page.select_option("#chat-model", "fake/alpha")
    page.fill("#chat-prompt", "count")
    page.click("#chat-send")
    _wait(lambda: "w3 " in _answer(page))
    assert _status(page) == "streaming"
    page.reload()
    page.wait_for_selector("#chat-section:not([hidden])")
    _wait(lambda: _status(page) == "done", timeout=scaled(20))
    assert _answer(page) == "".join(WORDS)
    assert page.input_value("#chat-prompt") == "count"
    screenshot("demo-llm-chat")


def test_chat_cancel_stops_the_upstream(
    page: Any, llm_server: RunningServer, upstream: FakeUpstream
) -> None:
    """Cancel mid-answer: the panel says cancelled and the upstream sees the hang-up."""
    upstream.plan("alpha", Plan(pieces=["thinking"], hang=True))
    before = upstream.disconnects
    _open(page, llm_server)
    page.select_option("#chat-model", "fake/alpha")
    page.fill("#chat-prompt", "wait")
    page.click("#chat-send")
    _wait(lambda: "thinking" in _answer(page))
    page.click("#chat-cancel")
    _wait(lambda: _status(page) == "cancelled")
    _wait(lambda: upstream.disconnects > before, timeout=2)
