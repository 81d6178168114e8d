"""The demo page at ``/`` in Chromium: calls stream live over each transport, resume, cancel."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.conftest import ADMIN_KEY

from .helpers import DemoPage, assert_exactly_once, every_backbone

COUNTDOWN = {"n": 5, "interval": 0.1}
TICKS = ["tick 1", "tick 2", "tick 3", "tick 4", "tick 5"]


def _assert_finished_cards(demo: DemoPage, count: int) -> None:
    cards = demo.cards()
    assert len(cards) == count
    for card in cards:
        assert card["status"] == "completed"
        assert card["progress"] == 1
        assert card["percent"] == "100%"
        assert card["outputs"] == TICKS


@every_backbone
def test_call_streams_over_websocket_to_completion(demo: DemoPage, screenshot: Any) -> None:
    """Two countdowns stream over the WebSocket: bars reach 100 %, every tick is shown."""
    demo.open()
    demo.choose("demo/countdown")
    demo.set_requests(COUNTDOWN, COUNTDOWN)
    demo.run()
    assert demo.wait_for_status("completed") == "completed"
    assert demo.transport() == "ws"
    _assert_finished_cards(demo, 2)
    events = demo.events()
    assert_exactly_once(events)
    assert demo.logged_seqs() == [event["seq"] for event in events]
    assert len(demo.log.websockets) == 1
    assert demo.log.event_streams() == []
    demo.log.assert_no_key_in_urls()
    screenshot("demo-ws")


@every_backbone
def test_call_streams_over_eventsource_with_websocket_disabled(
    demo: DemoPage, screenshot: Any
) -> None:
    """With "Disable WebSocket" checked, the same call streams over EventSource."""
    demo.open(websocket=False)
    demo.choose("demo/countdown")
    demo.set_requests(COUNTDOWN, COUNTDOWN)
    demo.run()
    assert demo.wait_for_status("completed") == "completed"
    assert demo.transport() == "sse"
    _assert_finished_cards(demo, 2)
    assert_exactly_once(demo.events())
    assert demo.log.websockets == []
    streams = demo.log.event_streams()
    assert len(streams) == 1
    assert parse_qs(urlsplit(streams[0]).query)["ticket"][0].startswith("tkt_")
    demo.log.assert_no_key_in_urls()
    screenshot("demo-sse")


@every_backbone
def test_websocket_drop_resumes_without_loss_or_duplicates(demo: DemoPage, screenshot: Any) -> None:
    """A dropped WebSocket reconnects and resubscribes after the last seq: 1..N exactly once."""
    demo.open()
    demo.choose("demo/countdown")
    demo.set_requests({"n": 20, "interval": 0.05}, {"n": 20, "interval": 0.05})
    demo.run()
    demo.wait_for_events(6)
    demo.page.evaluate("window.__skillwire.client._debugDrop()")
    assert demo.wait_for_status("completed") == "completed"
    events = demo.events()
    assert_exactly_once(events)
    assert len(events) == 2 + 2 * (1 + 20 + 20 + 1) + 1
    assert demo.logged_seqs() == list(range(1, len(events) + 1))
    assert len(demo.log.websockets) == 2
    assert "reconnecting" in [status["state"] for status in demo.statuses()]
    assert demo.transport() == "ws"
    screenshot("demo-ws-reconnect")


@every_backbone
def test_eventsource_drop_resumes_with_a_fresh_ticket(demo: DemoPage, screenshot: Any) -> None:
    """A dropped EventSource reopens with a new single-use ticket and ?after=<last seq>."""
    demo.open(websocket=False)
    demo.choose("demo/countdown")
    demo.set_requests({"n": 20, "interval": 0.05})
    demo.run()
    demo.wait_for_events(6)
    demo.page.evaluate("window.__skillwire.client._debugDrop()")
    assert demo.wait_for_status("completed") == "completed"
    assert_exactly_once(demo.events())
    streams = [parse_qs(urlsplit(url).query) for url in demo.log.event_streams()]
    assert len(streams) == 2
    assert streams[0]["after"] == ["0"]
    assert int(streams[1]["after"][0]) >= 6
    assert streams[0]["ticket"] != streams[1]["ticket"]
    assert demo.transport() == "sse"
    screenshot("demo-sse-reconnect")


@every_backbone
def test_cancel_button_cancels_the_running_task(demo: DemoPage, screenshot: Any) -> None:
    """Cancel ends a long task: the task and its sub-requests end up cancelled."""
    demo.open()
    demo.choose("demo/countdown")
    demo.set_requests({"n": 1000, "interval": 0.05}, {"n": 1000, "interval": 0.05})
    demo.run()
    demo.page.wait_for_selector("#cards li.card .outputs li")
    demo.page.click("#cancel")
    assert demo.wait_for_status("cancelled") == "cancelled"
    assert [card["status"] for card in demo.cards()] == ["cancelled", "cancelled"]
    assert demo.page.is_disabled("#cancel")
    assert demo.page.is_enabled("#run")
    events = demo.events()
    assert_exactly_once(events)
    assert events[-1]["type"] == "task.cancelled"
    screenshot("demo-cancel")


def test_partial_task_shows_the_failed_sub_request(demo: DemoPage, screenshot: Any) -> None:
    """An echo call with one failing sub-request ends partial, with the error on its card."""
    demo.open()
    demo.choose("demo/echo")
    demo.set_requests({"text": "hello"}, {"text": "boom", "fail": True})
    demo.run()
    assert demo.wait_for_status("partial") == "partial"
    ok, failed = demo.cards()
    assert ok["status"] == "completed"
    assert ok["outputs"] == ["hello"]
    assert failed["status"] == "failed"
    message = demo.page.locator("#cards li.card").nth(1).locator(".message").text_content()
    assert message is not None
    assert "failed on purpose: boom" in message
    screenshot("demo-partial")


def test_key_from_fragment_is_remembered_and_never_sent_in_a_url(demo: DemoPage) -> None:
    """#key=… fills the key, leaves the address bar, stays in sessionStorage, not in URLs."""
    demo.open()
    page = demo.page
    assert urlsplit(page.url).fragment == ""
    assert page.evaluate("sessionStorage.getItem('skillwire.apiKey')") == ADMIN_KEY
    assert page.input_value("#api-key") == ADMIN_KEY
    page.reload()
    page.wait_for_selector("#skill option", state="attached")
    demo.choose("demo/echo")
    demo.set_requests({"text": "again"})
    demo.run()
    assert demo.wait_for_status("completed") == "completed"
    demo.log.assert_no_key_in_urls()


def test_wrong_key_shows_the_error(demo: DemoPage) -> None:
    """A wrong key shows UNAUTHORIZED in an alert and no skill list."""
    demo.open(key=None)
    demo.page.fill("#api-key", "sk_wrong")
    demo.page.click("#connect")
    alert = demo.page.locator("#key-error[role=alert]")
    alert.filter(has_text="UNAUTHORIZED").wait_for()
    assert demo.page.is_hidden("#call-section")


def test_invalid_sub_request_is_flagged_on_its_field(demo: DemoPage) -> None:
    """A row that is not a JSON object is marked invalid, focused, and nothing is sent."""
    demo.open()
    demo.choose("demo/echo")
    demo.set_requests({"text": "fine"}, {"text": "placeholder"})
    second = demo.page.locator("#requests li").nth(1).locator("input")
    second.fill("[1, 2")
    requests_before = len(demo.log.requests)
    demo.run()
    assert second.get_attribute("aria-invalid") == "true"
    assert second.evaluate("el => el === document.activeElement")
    assert "Not valid" in (demo.page.locator("#requests li").nth(1).text_content() or "")
    assert len(demo.log.requests) == requests_before


def test_page_works_from_the_keyboard_alone(demo: DemoPage) -> None:
    """Key, skill, sub-request and Run are all reachable and usable with the keyboard."""
    demo.open(key=None)
    page = demo.page
    page.focus("#api-key")
    page.keyboard.type(ADMIN_KEY)
    page.keyboard.press("Enter")
    page.wait_for_selector("#skill option", state="attached")
    page.focus("#skill")
    page.keyboard.press("ArrowDown")  # demo/echo -> demo/countdown
    assert page.input_value("#skill") == "demo/countdown"
    page.keyboard.press("Tab")  # the schema's summary
    page.keyboard.press("Tab")  # sub-request 1
    assert page.evaluate("document.activeElement.id").startswith("req-")
    page.keyboard.press("Control+A")
    page.keyboard.type('{"n": 2, "interval": 0.05}')
    page.keyboard.press("Enter")  # submits the form
    assert demo.wait_for_status("completed") == "completed"


def test_every_control_has_an_accessible_name(demo: DemoPage) -> None:
    """Inputs, selects, buttons and progress bars all have a label or an accessible name."""
    demo.open()
    demo.choose("demo/countdown")
    demo.set_requests({"n": 1, "interval": 0}, {"n": 1, "interval": 0})
    demo.run()
    demo.wait_for_status("completed")
    unnamed = demo.page.evaluate(
        """() => [...document.querySelectorAll('input, select, button, progress, textarea')]
            .filter(el => !(el.labels?.length || el.getAttribute('aria-label')
                            || el.getAttribute('aria-labelledby') || el.textContent.trim()))
            .map(el => el.outerHTML)"""
    )
    assert unnamed == []
    assert demo.page.get_attribute("#events", "aria-live") == "polite"
    assert demo.page.get_attribute("html", "lang") == "en"
