"""skillwire.js in Chromium: REST, every transport, fallbacks, resume, tickets and CORS."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import ADMIN_KEY, SCOPED_KEY, RunningServer, free_port

from .helpers import PageLog, every_backbone

# Runs in the page: `sw` is the module, `key` and `base` are set, `record()` makes callbacks
# that keep what a subscription saw, and `summary(r, sub)` is what the tests look at.
PRELUDE = """
const sw = await import('/skillwire.js');
const { SkillwireClient, SkillwireError } = sw;
const { key, base } = arg;
const record = () => {
  const r = { events: [], statuses: [], errors: [] };
  r.onEvent = (e) => r.events.push(e);
  r.onStatus = (s) => r.statuses.push(s);
  r.onError = (e) => r.errors.push(e.code);
  return r;
};
const summary = async (r, sub) => {
  let end = null, failure = null;
  try { end = await sub.done; } catch (e) { failure = e.code; }
  return {
    seqs: r.events.map((e) => e.seq), types: r.events.map((e) => e.type),
    last: r.events.at(-1) ?? null, states: r.statuses.map((s) => s.state),
    transports: [...new Set(r.statuses.map((s) => s.transport))],
    codes: r.statuses.map((s) => s.code),
    errors: r.errors, end: end && end.type, failure, transport: sub.transport, taskId: sub.taskId,
  };
};
"""

Js = Callable[..., Any]


@pytest.fixture
def js(page: Any, server: RunningServer) -> Js:
    """Run an async function body in a page of ``server`` (or of ``base``), with PRELUDE."""

    def run(body: str, *, base: str | None = None, key: str = ADMIN_KEY, **extra: Any) -> Any:
        if page.url == "about:blank":
            page.goto(server.url + "/")
        arg = {"key": key, "base": base or server.url, **extra}
        return page.evaluate(f"async (arg) => {{ {PRELUDE}\n{body} }}", arg)

    return run


def _exactly_once(result: dict[str, Any], first: int = 1) -> None:
    seqs = result["seqs"]
    assert seqs == list(range(first, first + len(seqs))), seqs
    assert result["last"]["data"]["last_seq"] == seqs[-1]


def test_rest_methods_answer_tasks_and_errors_carry_the_envelope(js: Js) -> None:
    """apps, skill, call (wait), task and cancel; errors become SkillwireError with code."""
    result = js("""
      const c = new SkillwireClient({ baseUrl: base, apiKey: key });
      const apps = await c.apps();
      const skill = await c.skill('demo', 'echo');
      const done = await c.call('demo', 'echo', [{ text: 'a' }, { text: 'b' }], { wait: 5,
                                metadata: { from: 'browser' } });
      const queued = await c.call('demo', 'countdown', [{ n: 50, interval: 0.05 }], { wait: 0 });
      const cancelled = await c.cancel(queued.task_id);
      const again = await c.task(done.task_id);
      const failure = async (p) => { try { await p; return null; } catch (e) {
        return { name: e.name, code: e.code, status: e.status, isError: e instanceof SkillwireError,
                 requestId: e.requestId, temporary: e.temporary, details: e.details }; } };
      return {
        apps: apps.items.map((a) => a.app), skill: skill.mode, done: done.status,
        previews: done.previews, metadata: done.metadata, queued: queued.status,
        cancelled: cancelled.status, again: again.task_id === done.task_id,
        conflict: await failure(c.cancel(done.task_id)),
        missing: await failure(c.task('tsk_nope')),
        invalid: await failure(c.call('demo', 'echo', [{ nope: 1 }])),
        unknown: await failure(c.skill('demo', 'nope')),
      };
    """)
    assert result["apps"] == ["demo"]
    assert result["skill"] == "quick"
    assert result["done"] == "completed"
    assert result["previews"] == [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert result["metadata"] == {"from": "browser"}
    assert result["queued"] in ("queued", "running")
    assert result["cancelled"] == "cancelled"
    assert result["again"]
    conflict = result["conflict"]
    assert conflict["isError"]
    assert conflict["name"] == "SkillwireError"
    assert (conflict["code"], conflict["status"], conflict["temporary"]) == ("CONFLICT", 409, False)
    assert conflict["requestId"]
    assert (result["missing"]["code"], result["missing"]["status"]) == ("NOT_FOUND", 404)
    assert result["invalid"]["code"] == "VALIDATION_ERROR"
    assert result["unknown"]["code"] == "NOT_FOUND"


@every_backbone
@pytest.mark.parametrize("transport", ["ws", "sse", "poll"])
def test_subscribe_follows_a_task_to_its_end(js: Js, transport: str) -> None:
    """subscribe() on each transport delivers seqs in order, once, ending with the terminal."""
    result = js(
        """
      const c = new SkillwireClient({ baseUrl: base, apiKey: key, transports: [arg.transport] });
      const task = await c.call('demo', 'countdown', [{ n: 5, interval: 0.05 }], { wait: 0 });
      const r = record();
      return summary(r, c.subscribe(task.task_id, r));
    """,
        transport=transport,
    )
    assert result["transports"] == [transport]
    assert result["end"] == "task.completed"
    assert result["failure"] is None
    if transport == "poll":
        # Polling sees Tasks: the first answer as a snapshot, then the terminal Task.
        seqs = result["seqs"]
        assert seqs == sorted(set(seqs))
        assert result["types"][-1] == "task.completed"
        assert set(result["types"][:-1]) <= {"task.snapshot"}
        assert result["last"]["data"]["last_seq"] == seqs[-1]
    else:
        _exactly_once(result)
        assert len(result["seqs"]) == 2 + 1 + 5 + 5 + 1 + 1


@every_backbone
@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_subscribe_after_a_seq_starts_after_it(js: Js, transport: str) -> None:
    """after=N delivers N+1 onwards; after=the last seq of a finished task ends at once."""
    result = js(
        """
      const c = new SkillwireClient({ baseUrl: base, apiKey: key, transports: [arg.transport] });
      const task = await c.call('demo', 'countdown', [{ n: 3, interval: 0 }], { wait: 5 });
      const r = record();
      const tail = await summary(r, c.subscribe(task.task_id, { ...r, after: 4 }));
      const r2 = record();
      const none = await summary(r2, c.subscribe(task.task_id, { ...r2, after: task.last_seq }));
      return { tail, none, last: task.last_seq };
    """,
        transport=transport,
    )
    _exactly_once(result["tail"], first=5)
    assert result["tail"]["seqs"][-1] == result["last"]
    assert result["none"]["seqs"] == []
    assert result["none"]["failure"] is None


@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_subscribe_past_the_end_of_a_running_task_ends_with_it(js: Js, transport: str) -> None:
    """after beyond a running task's last seq: `done` resolves (null, no events) when it ends."""
    result = js(
        """
      const c = new SkillwireClient({ baseUrl: base, apiKey: key, transports: [arg.transport] });
      const task = await c.call('demo', 'countdown', [{ n: 4, interval: 0.2 }], { wait: 0 });
      const r = record();
      const sub = c.subscribe(task.task_id, { ...r, after: 1000 });
      const timeout = new Promise((resolve) => setTimeout(() => resolve('timeout'), 10000));
      const ended = await Promise.race([sub.done, timeout]);
      const final = await c.task(task.task_id);
      return { ended, status: final.status, result: await summary(r, sub) };
    """,
        transport=transport,
    )
    assert result["ended"] is None  # not 'timeout': the subscription ended
    assert result["status"] == "completed"
    assert result["result"]["seqs"] == []
    assert result["result"]["failure"] is None
    assert result["result"]["states"][-1] == "done"


@pytest.mark.parametrize("transport", ["ws", "sse", "poll"])
def test_snapshot_first_then_the_rest(js: Js, transport: str) -> None:
    """snapshot: true starts with one task.snapshot of the Task as of its seq."""
    result = js(
        """
      const c = new SkillwireClient({ baseUrl: base, apiKey: key, transports: [arg.transport] });
      const task = await c.call('demo', 'echo', [{ text: 'x' }], { wait: 5 });
      const r = record();
      const s = await summary(r, c.subscribe(task.task_id, { ...r, snapshot: true }));
      return { ...s, first: r.events[0], last_seq: task.last_seq };
    """,
        transport=transport,
    )
    assert result["first"]["type"] == "task.snapshot"
    assert result["first"]["data"]["status"] == "completed"
    assert result["seqs"][0] == result["last_seq"]
    assert result["failure"] is None


@every_backbone
def test_stream_resumes_after_the_server_closes_with_1013(
    page: Any, page_log: PageLog, server_factory: Callable[..., RunningServer], js: Js
) -> None:
    """A server that closes a too-slow client with 1013 is reconnected to; nothing is lost."""
    server = server_factory({"send_queue": 2, "heartbeat_interval": 0.5})
    page.goto(server.url + "/")
    result = js(
        """
      const c = new SkillwireClient({ baseUrl: base, apiKey: key, backoff: { initial: 50 } });
      const r = record();
      const requests = Array.from({ length: 5 }, () => ({ n: 300, interval: 0 }));
      return summary(r, await c.stream('demo', 'countdown', requests, r));
    """,
        base=server.url,
    )
    _exactly_once(result)
    assert len(result["seqs"]) == 2 + 5 * (1 + 300 + 300 + 1) + 1
    assert 1013 in result["codes"]
    assert len(page_log.websockets) >= 2


def test_falls_back_to_eventsource_when_websocket_cannot_connect(js: Js, page_log: PageLog) -> None:
    """WebSocket refused twice: stream() calls over REST and follows over EventSource."""
    result = js(
        """
      class DeadSocket extends WebSocket {
        constructor(url, protocols) { super(arg.dead, protocols); }
      }
      const c = new SkillwireClient({ baseUrl: base, apiKey: key, WebSocket: DeadSocket,
                                      backoff: { initial: 20 } });
      const r = record();
      const sub = await c.stream('demo', 'countdown', [{ n: 3, interval: 0.05 }], r);
      return { ...(await summary(r, sub)), now: c.transport };
    """,
        dead=f"ws://127.0.0.1:{free_port()}/",
    )
    _exactly_once(result)
    assert result["transport"] == "sse"
    assert result["now"] == "sse"
    assert len(page_log.event_streams()) == 1
    page_log.assert_no_key_in_urls()


def test_falls_back_to_polling_when_no_streaming_transport_connects(js: Js) -> None:
    """Neither WebSocket nor EventSource connects: the task is followed by polling."""
    result = js(
        """
      class DeadSocket extends WebSocket {
        constructor(url, protocols) { super(arg.dead, protocols); }
      }
      class DeadSource extends EventSource {
        constructor(url) { super(arg.dead.replace('ws:', 'http:')); }
      }
      const c = new SkillwireClient({ baseUrl: base, apiKey: key, WebSocket: DeadSocket,
                                      EventSource: DeadSource, backoff: { initial: 20 } });
      const r = record();
      const sub = await c.stream('demo', 'countdown', [{ n: 3, interval: 0.05 }], r);
      return summary(r, sub);
    """,
        dead=f"ws://127.0.0.1:{free_port()}/",
    )
    assert result["transport"] == "poll"
    assert result["end"] == "task.completed"
    assert result["transports"][-1] == "poll"


@every_backbone
def test_ticket_only_client_streams_and_cancels_over_websocket(js: Js, page_log: PageLog) -> None:
    """With getTicket (no key in the client), each connection uses a fresh ?ticket=."""
    result = js("""
      const getTicket = async () => {
        const response = await fetch(base + '/api/v1/tickets', {
          method: 'POST', headers: { Authorization: 'Bearer ' + key } });
        return response.json();   // {ticket, expires_in}: the client takes .ticket
      };
      const c = new SkillwireClient({ baseUrl: base, getTicket, backoff: { initial: 20 } });
      const r = record();
      const sub = await c.stream('demo', 'countdown', [{ n: 1000, interval: 0.02 }], r);
      while (r.events.length < 5) await new Promise((ok) => setTimeout(ok, 10));
      c._debugDrop();
      while (r.events.length < 12) await new Promise((ok) => setTimeout(ok, 10));
      const cancelled = await c.cancel(sub.taskId);
      return { ...(await summary(r, sub)), cancelled };
    """)
    _exactly_once(result)
    assert result["end"] == "task.cancelled"
    assert result["cancelled"] is None  # sent as the WebSocket `cancel` op
    tickets = [parse_qs(urlsplit(url).query)["ticket"][0] for url in page_log.websockets]
    assert len(tickets) == 2
    assert len(set(tickets)) == 2
    page_log.assert_no_key_in_urls()


def test_forbidden_skill_rejects_the_call_and_keeps_the_connection(js: Js) -> None:
    """A scoped key calling outside its scope gets FORBIDDEN; its allowed calls still work."""
    result = js(
        """
      const c = new SkillwireClient({ baseUrl: base, apiKey: key });
      let refused = null;
      try { await c.stream('demo', 'countdown', [{ n: 1 }]); } catch (e) { refused = e.code; }
      const r = record();
      const ok = await summary(r, await c.stream('demo', 'echo', [{ text: 'fine' }], r));
      return { refused, ok, sockets: c._link ? 1 : 0 };
    """,
        key=SCOPED_KEY,
    )
    assert result["refused"] == "FORBIDDEN"
    assert result["ok"]["end"] == "task.completed"
    assert result["ok"]["transport"] == "ws"


def test_wrong_key_fails_with_unauthorized_on_every_transport(js: Js) -> None:
    """A wrong key: the WebSocket closes 4401 and stream() rejects UNAUTHORIZED, no retry loop."""
    result = js(
        """
      const out = {};
      for (const transports of [['ws'], ['sse'], ['poll']]) {
        const c = new SkillwireClient({ baseUrl: base, apiKey: 'sk_wrong', transports });
        try { await c.stream('demo', 'echo', [{ text: 'x' }]); out[transports[0]] = 'ok'; }
        catch (e) { out[transports[0]] = e.code; }
        const r = record();
        const sub = c.subscribe('tsk_whatever', r);
        out[transports[0] + '-subscribe'] = (await summary(r, sub)).failure;
      }
      return out;
    """,
        key="sk_wrong",
    )
    assert result == {
        "ws": "UNAUTHORIZED",
        "ws-subscribe": "UNAUTHORIZED",
        "sse": "UNAUTHORIZED",
        "sse-subscribe": "UNAUTHORIZED",
        "poll": "UNAUTHORIZED",
        "poll-subscribe": "UNAUTHORIZED",
    }


def test_unsubscribe_stops_delivery(js: Js) -> None:
    """unsubscribe() stops the events at once and resolves done with null."""
    result = js("""
      const c = new SkillwireClient({ baseUrl: base, apiKey: key });
      const r = record();
      const sub = await c.stream('demo', 'countdown', [{ n: 100, interval: 0.02 }], r);
      while (r.events.length < 4) await new Promise((ok) => setTimeout(ok, 10));
      sub.unsubscribe();
      const seen = r.events.length;
      await new Promise((ok) => setTimeout(ok, 300));
      const end = await sub.done;
      await c.cancel(sub.taskId);
      return { seen, after: r.events.length, end, closed: sub.closed };
    """)
    assert result["seen"] == result["after"]
    assert result["end"] is None
    assert result["closed"]


def test_cross_origin_page_uses_a_cors_enabled_server(
    page: Any, server: RunningServer, server_factory: Callable[..., RunningServer], js: Js
) -> None:
    """From another origin: REST, WebSocket and EventSource work where CORS allows it."""
    page.goto(server.url + "/")
    origin = server.url
    allowed = server_factory({"cors": {"allow_origins": [origin]}})
    closed = server_factory()
    result = js(
        """
      const out = {};
      for (const transports of [['ws'], ['sse'], ['poll']]) {
        const c = new SkillwireClient({ baseUrl: base, apiKey: key, transports });
        const r = record();
        const sub = await c.stream('demo', 'echo', [{ text: 'hi' }], r);
        out[transports[0]] = (await summary(r, sub)).end;
      }
      const c = new SkillwireClient({ baseUrl: base, apiKey: key });
      const answer = await c.call('demo', 'countdown', [{ n: 1 }], { wait: 0 });
      out.location = answer.links.self;
      const other = new SkillwireClient({ baseUrl: arg.closed, apiKey: key });
      try { await other.apps(); out.closed = 'ok'; } catch (e) { out.closed = e.code; }
      return out;
    """,
        base=allowed.url,
        closed=closed.url,
    )
    assert result == {
        "ws": "task.completed",
        "sse": "task.completed",
        "poll": "task.completed",
        "location": result["location"],
        "closed": "NETWORK_ERROR",
    }


def test_unknown_task_fails_not_found_on_every_transport(js: Js) -> None:
    """subscribe() to an id never issued ends with NOT_FOUND (EventSource: via a REST probe)."""
    result = js("""
      const out = {};
      for (const transport of ['ws', 'sse', 'poll']) {
        const c = new SkillwireClient({ baseUrl: base, apiKey: key, transports: [transport] });
        const r = record();
        const s = await summary(r, c.subscribe('tsk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', r));
        out[transport] = [s.failure, s.errors, s.states.at(-1)];
      }
      return out;
    """)
    for transport in ("ws", "sse", "poll"):
        assert result[transport] == ["NOT_FOUND", ["NOT_FOUND"], "failed"], transport
