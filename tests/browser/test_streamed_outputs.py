"""skillwire.js and streamed outputs: TaskOutputs on hand-made events, unknown types skipped."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import ADMIN_KEY, RunningServer, scaled

from .helpers import DemoPage, every_backbone

# Runs in the page: `sw` is the module; `ev(seq, type, data, index)` makes an event and
# `delta(seq, n, text, field, index)` a request.delta.
PRELUDE = """
const sw = await import('/skillwire.js');
const ev = (seq, type, data = {}, index = 0) => ({
  task_id: 'tsk_js', seq, type, time: '2026-12-05T00:00:00.000000Z', data,
  ...(type.startsWith('request.') ? { index } : {}),
});
const delta = (seq, n, append, field = 'text', index = 0) =>
  ev(seq, 'request.delta', { output: n, field, append }, index);
const task = (lastSeq, requests, status = 'running') => ({
  task_id: 'tsk_js', status, last_seq: lastSeq,
  requests: requests.map((r) => ({ status: 'running', progress: 0, error: null, ...r })),
});
"""


@pytest.fixture
def js(page: Any, server: RunningServer) -> Any:
    """Run an async function body in a page of ``server``, with PRELUDE."""

    def run(body: str, **arg: Any) -> Any:
        if page.url == "about:blank":
            page.goto(server.url + "/")
        return page.evaluate(f"async (arg) => {{ {PRELUDE}\n{body} }}", arg)

    return run


def test_task_outputs_apply_deltas_snapshots_and_reruns(js: Any) -> None:
    """TaskOutputs grows outputs by delta, counts dropped outputs, resets on a snapshot and on
    request.started, and ignores deltas that cannot apply and replays."""
    result = js("""
      const o = new sw.TaskOutputs();
      const emitted = { type: 'text', text: '' };
      o.apply(ev(1, 'request.output', emitted));
      o.apply(delta(2, 0, 'Hel'));
      o.apply(delta(3, 0, 'lo'));
      o.apply(delta(3, 0, 'lo'));                 // a replay
      const first = o.text();
      o.apply(ev(4, 'request.output', { type: 'tool_call', arguments: '' }));
      o.apply(delta(5, 1, '{}', 'arguments'));
      const args = o.text({ field: 'arguments' });
      const ignored = [o.apply(delta(6, 9, 'x')), o.apply(delta(7, 1, 'x', 'missing'))];
      o.apply(ev(9, 'task.snapshot', task(9, [{ index: 0, outputs_dropped: 4,
        output: [{ type: 'text', text: 'four' }] }]), undefined));
      const gone = o.apply(delta(10, 2, 'x'));
      o.apply(delta(11, 4, '!'));
      const afterSnapshot = o.output(0).map((x) => x.text);
      o.apply(ev(12, 'request.started'));
      o.apply(ev(13, 'request.output', { type: 'text', text: 'again' }));
      return { first, args, ignored, gone, afterSnapshot, emitted: emitted.text,
               rerun: o.output(0), dropped: o.request(0).outputsDropped };
    """)
    assert result == {
        "first": "Hello",
        "args": "{}",
        "ignored": [None, None],
        "gone": None,
        "afterSnapshot": ["four!"],
        "emitted": "",
        "rerun": [{"type": "text", "text": "again"}],
        "dropped": 0,
    }


def test_unknown_event_types_and_ops_are_skipped_over_websocket(js: Any) -> None:
    """A made-up event type from a (scripted) newer server never reaches onEvent."""
    result = js(
        """
      const log = [];
      class NewerServer {   // a WebSocket whose server speaks a newer contract
        constructor() { this.readyState = 0; setTimeout(() => this.onopen?.(), 0); }
        reply(...messages) {
          const data = messages.map((m) => JSON.stringify(m)).join('\\n');
          setTimeout(() => this.onmessage?.({ data }), 0);
        }
        send(text) {
          const m = JSON.parse(text);
          if (m.op === 'auth') this.reply({ op: 'authenticated', ref: m.ref, principal: 'x' });
          if (m.op === 'subscribe') {
            this.reply(
              { op: 'subscribed', ref: m.ref, task_id: m.task_id },
              { op: 'telepathy', mood: 'a made-up op' },
              { op: 'event', event: ev(1, 'task.started', {}, undefined) },
              { op: 'event', event: ev(2, 'request.telepathy', { thought: 'new' }) },
              { op: 'event', event: ev(3, 'request.output', { type: 'text', text: 'a' }) },
              { op: 'event', event: ev(4, 'task.completed', task(4, []), undefined) },
            );
          }
        }
        close() {}
      }
      const client = new sw.SkillwireClient({ baseUrl: location.origin, apiKey: arg.key,
                                              transports: ['ws'], WebSocket: NewerServer });
      const sub = client.subscribe('tsk_js', { onEvent: (e) => log.push([e.seq, e.type]) });
      await sub.done;
      client.close();
      return log;
    """,
        key=ADMIN_KEY,
    )
    assert result == [[1, "task.started"], [3, "request.output"], [4, "task.completed"]]


STREAM_TEXT = " ".join(f"word{i}" for i in range(60)) + " — the end."


@every_backbone
@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_stream_text_survives_drops_exactly(js: Any, transport: str) -> None:
    """streamText over a transport that drops twice mid-answer: the chunks join to the text."""
    result = js(
        """
      const client = new sw.SkillwireClient({ baseUrl: location.origin, apiKey: arg.key,
                                              transports: [arg.transport] });
      const called = await client.call('demo', 'stream',
                                       [{ text: arg.text, words_per_second: 60 }], { wait: 0 });
      const chunks = [];
      const stream = client.streamText(called.task_id);
      for await (const chunk of stream) {
        chunks.push(chunk);
        if (chunks.length === 5 || chunks.length === 25) client._debugDrop();
      }
      const byTask = [];
      for await (const chunk of client.streamText(await client.task(called.task_id))) {
        byTask.push(chunk);
      }
      client.close();
      return { chunks, text: stream.text, done: await stream.done, byTask,
               transport: stream.subscription.transport };
    """,
        key=ADMIN_KEY,
        text=STREAM_TEXT,
        transport=transport,
    )
    assert "".join(result["chunks"]) == STREAM_TEXT
    assert len(result["chunks"]) > 10
    assert result["text"] == result["done"] == STREAM_TEXT
    assert result["byTask"] == [STREAM_TEXT]
    assert result["transport"] == transport


@every_backbone
def test_demo_page_types_the_answer_and_survives_a_reload(demo: DemoPage, screenshot: Any) -> None:
    """demo/stream types live on the page; a reload mid-answer resumes from a snapshot and the
    final text is the whole text, once."""
    demo.open()
    demo.choose("demo/stream")
    demo.set_requests({"text": STREAM_TEXT, "words_per_second": 30})
    demo.run()
    page = demo.page
    page.wait_for_function(
        "document.querySelector('#cards .outputs li')?.textContent.includes('word5 ')",
        timeout=scaled(15) * 1000,
    )
    typed = demo.cards()[0]["outputs"][0]
    assert STREAM_TEXT.startswith(typed) and typed != STREAM_TEXT  # typing, not done
    task_id = page.text_content("#task-id")
    screenshot("demo-stream-typing")
    page.reload()
    assert demo.wait_for_status("completed", timeout=30) == "completed"
    assert page.text_content("#task-id") == task_id
    events = demo.events()
    assert events[0]["type"] == "task.snapshot"
    assert events[0]["seq"] > 3  # the snapshot came mid-answer, with the text so far
    assert any(e["type"] == "request.delta" for e in events[1:])  # then it kept typing
    assert demo.cards()[0]["outputs"] == [STREAM_TEXT]
    assert page.evaluate("window.__skillwire.outputs.text()") == STREAM_TEXT
    screenshot("demo-stream-reloaded")
