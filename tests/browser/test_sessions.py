"""The demo page's conversation view in Chromium: one session open in two tabs, both live."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import ADMIN_KEY, RunningServer, scaled

from .helpers import DemoPage, PageLog, every_backbone


def _turns(page: Any) -> list[dict[str, Any]]:
    """Each call shown in the conversation: task id, status and text."""
    turns: list[dict[str, Any]] = page.eval_on_selector_all(
        "#conversation li",
        """els => els.map(e => ({task_id: e.dataset.taskId, status: e.dataset.status,
                                   text: e.querySelector('.turn-text').textContent}))""",
    )
    return turns


def _wait_for_turns(page: Any, count: int, status: str) -> None:
    page.wait_for_function(
        f"""[...document.querySelectorAll('#conversation li')]
              .filter(e => e.dataset.status === '{status}').length >= {count}""",
        timeout=scaled(20) * 1000,
    )


@every_backbone
def test_a_conversation_open_in_two_tabs_updates_both_live(
    browser: Any, demo: DemoPage, server: RunningServer, screenshot: Any
) -> None:
    """Tab A starts a conversation and makes several calls in it; tab B, opened on the same
    conversation, shows every call live too, and both saw each session event exactly once."""
    demo.open()
    page_a = demo.page
    page_a.click("#session-new")
    page_a.wait_for_selector("#session-section[data-session-id]")
    session_id = page_a.get_attribute("#session-section", "data-session-id")
    assert session_id.startswith("ses_")

    context_b = browser.new_context(viewport={"width": 1100, "height": 900})
    context_b.set_default_timeout(scaled(15) * 1000)
    page_b = context_b.new_page()
    log_b = PageLog()
    log_b.attach(page_b)
    try:
        page_b.goto(f"{server.url}/#key={ADMIN_KEY}&session={session_id}")
        page_b.wait_for_selector(f"#session-section[data-session-id='{session_id}']")
        page_b.wait_for_function("window.__skillwire.session !== null")

        demo.choose("demo/echo")
        demo.set_requests({"text": "hello"})
        demo.run()
        demo.wait_for_status("completed")
        demo.choose("demo/countdown")
        demo.set_requests({"n": 3, "interval": 0.05})
        demo.run()
        demo.wait_for_status("completed")
        demo.choose("demo/stream")
        demo.set_requests({"text": "one two three", "words_per_second": 50})
        demo.run()
        demo.wait_for_status("completed")

        for page in (page_a, page_b):
            _wait_for_turns(page, 3, "completed")
        turns_a, turns_b = _turns(page_a), _turns(page_b)
        assert turns_a == turns_b
        assert [t["text"] for t in turns_a] == ["hello", "tick 1\ntick 2\ntick 3", "one two three"]
        for page in (page_a, page_b):
            events = page.evaluate("window.__skillwire.sessionEvents")
            seqs = [e["seq"] for e in events if e["type"] != "session.snapshot"]
            assert seqs == sorted(set(seqs)), "each session event once, in order"
            assert seqs[-1] == events[-1]["seq"]
        screenshot("demo-conversation")
        page_a.click("#session-close")
        for page in (page_a, page_b):
            page.wait_for_selector("#session-section[data-status=closed]")
        assert not log_b.page_errors, log_b.page_errors
        log_b.assert_no_key_in_urls()
    finally:
        context_b.close()


@pytest.mark.parametrize("transports", [["ws"], ["sse"]])
def test_skillwire_js_follows_a_session_through_drops_exactly_once(
    page: Any, server: RunningServer, transports: list[str]
) -> None:
    """followSession over WebSocket or EventSource, its connection dropped twice while tasks
    stream into the session: every session event once, in order, ending at session.closed."""
    page.goto(server.url + "/")
    result = page.evaluate(
        """async ({ key, base, transports }) => {
      const { SkillwireClient } = await import('/skillwire.js');
      const c = new SkillwireClient({ baseUrl: base, apiKey: key, transports,
                                      backoff: { initial: 20 } });
      const session = await c.createSession({ title: 'js' });
      const events = [];
      const sub = c.followSession(session.session_id, { onEvent: (e) => events.push(e) });
      const until = async (n) => { while (events.length < n) await new Promise(
        (ok) => setTimeout(ok, 10)); };
      const first = await c.call('demo', 'countdown', [{ n: 30, interval: 0.02 }],
                                 { wait: 0, sessionId: session.session_id });
      await until(5);
      c._debugDrop();
      await until(15);
      c._debugDrop();
      const second = await c.call('demo', 'echo', [{ text: 'x' }],
                                  { wait: 5, sessionId: session.session_id });
      await c.task(first.task_id, { wait: 10 });
      await c.closeSession(session.session_id);
      const end = await sub.done;
      return { seqs: events.map((e) => e.seq), types: events.map((e) => e.type),
               end: end.type, tasks: [first.task_id, second.task_id],
               joined: events.filter((e) => e.type === 'session.task').map((e) => e.data.task_id) };
    }""",
        {"key": ADMIN_KEY, "base": server.url, "transports": transports},
    )
    assert result["seqs"] == list(range(1, len(result["seqs"]) + 1))
    assert result["end"] == "session.closed"
    assert result["joined"] == result["tasks"]
