#!/usr/bin/env node
// The bench's load generator: thousands of WebSocket / SSE / socket.io / raw Redis pub/sub
// subscribers, or an HTTP call loop. Driven by bench/bench.py over stdin/stdout:
//
//   node load.js CONFIG.json
//   stdout: {"event":"ready",...} once every connection follows its target (or failed),
//           {"event":"result",...} at the end
//   stdin:  "go"    -> start the measurement window (CPU, wall clock)
//           "stop"  -> report now (what did not arrive counts as lost)
//           "close" -> (idle mode) close every connection and exit
//
// Every loop is bounded: connections by the config, the run by run_timeout_s, the whole
// process by a hard timer (hard_timeout_s), after which it reports and exits by itself.
// Publish->receive latency: each payload carries t (seconds since the epoch, float) set by
// the publisher on this same machine; receive time is Date.now() refined with
// performance.now() (calibrated at start), so both read the same realtime clock.
'use strict';

const fs = require('fs');
const http = require('http');
const net = require('net');
const { performance } = require('perf_hooks');
const readline = require('readline');
const WebSocket = require('ws');

const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const HOST = cfg.host || '127.0.0.1';

// -- clock -------------------------------------------------------------------------------
function calibrate() {
  const d0 = Date.now();
  let d = d0;
  while (d === d0) d = Date.now(); // align on a millisecond edge
  return d - performance.now();
}
const OFFSET = calibrate();
const nowMs = () => OFFSET + performance.now();

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

// -- latency samples ---------------------------------------------------------------------
class Samples {
  constructor(capacity) {
    this.buf = new Float64Array(Math.max(1024, capacity));
    this.n = 0;
  }
  push(v) {
    if (this.n === this.buf.length) {
      const bigger = new Float64Array(this.buf.length * 2);
      bigger.set(this.buf);
      this.buf = bigger;
    }
    this.buf[this.n++] = v;
  }
  write(path) {
    fs.writeFileSync(path, Buffer.from(this.buf.buffer, 0, this.n * 8));
  }
}

const errors = [];
function noteError(msg) {
  if (errors.length < 20) errors.push(String(msg).slice(0, 300));
}

// -- subscriber connections --------------------------------------------------------------
const TERMINAL = new Set(['task.completed', 'task.partial', 'task.failed', 'task.cancelled']);

class Conn {
  constructor(index, spec) {
    this.index = index;
    this.target = spec.target || null; // task id, channel or room
    this.call = spec.call || null; // skillwire: call this skill and follow the task
    this.ready = false;
    this.failed = false;
    this.done = false;
    this.got = 0; // distinct payloads (i increasing)
    this.lastI = 0;
    this.dups = 0;
    this.gaps = 0; // payload i jumped (something missing in between)
    this.seqGaps = 0; // skillwire: event seq jumped
    this.deltas = 0; // skillwire: request.delta events received
    this.lastSeq = 0;
    this.reconnects = 0;
    this.retries = 0;
    this.gen = 0; // bumped when a connection of this subscriber is given up
    this.closed = false;
    this.handle = null;
    this.connecting = false;
  }
}

const conns = (cfg.conns || []).map((spec, i) => new Conn(i, spec));
const expect = cfg.expect || 0;
const samples = new Samples(conns.length * Math.max(1, expect));
let measuring = false;
let firstT = Infinity; // earliest publish time seen (ms)
let lastRecv = 0; // latest receive time (ms)
let received = 0;
let nDone = 0;
let nReady = 0;
let nFailed = 0;
let stopping = false;
let readyReported = false;

function onPayload(conn, p) {
  const recv = nowMs();
  const i = p.i;
  if (i <= conn.lastI) {
    conn.dups++;
    return;
  }
  if (i !== conn.lastI + 1) conn.gaps++;
  conn.lastI = i;
  conn.got++;
  received++;
  const t = p.t * 1000;
  samples.push(recv - t);
  if (t < firstT) firstT = t;
  if (recv > lastRecv) lastRecv = recv;
  if (expect && conn.got >= expect && !cfg.terminal) finish(conn);
}

function markReady(conn) {
  if (conn.ready) return;
  conn.ready = true;
  nReady++;
  if (conn.connecting) {
    conn.connecting = false;
    inFlight--;
  }
  pump();
  maybeReportReady();
}

function markFailed(conn, why) {
  if (conn.ready || conn.failed) return;
  conn.failed = true;
  nFailed++;
  if (conn.connecting) {
    conn.connecting = false;
    inFlight--;
  }
  noteError(`conn ${conn.index}: ${why}`);
  pump();
  maybeReportReady();
}

function finish(conn) {
  if (conn.done) return;
  conn.done = true;
  nDone++;
  if (cfg.close_when_done) closeConn(conn);
  if (nDone + nFailed >= conns.length) report('all done');
}

function closeConn(conn) {
  conn.closed = true;
  const h = conn.handle;
  if (!h) return;
  try {
    if (h.terminate) h.terminate();
    else if (h.disconnect) h.disconnect();
    else if (h.destroy) h.destroy();
  } catch (e) {
    /* already gone */
  }
}

function lost(conn, why, gen) {
  // A connection that ended before its last payload: resume where that makes sense.
  if (gen !== conn.gen) return; // an old connection of this subscriber, already handled
  conn.gen++;
  if (conn.done || conn.closed || stopping) return;
  const canResume = cfg.system === 'skillwire' && conn.target;
  if (canResume && conn.reconnects < (cfg.max_reconnects ?? 5)) {
    conn.reconnects++;
    noteError(`conn ${conn.index} reconnects: ${why}`);
    setTimeout(() => open(conn), 50 * conn.reconnects);
    return;
  }
  if (!conn.ready) {
    markFailed(conn, why);
    return;
  }
  giveUp(conn, why);
}

function giveUp(conn, why) {
  // a ready subscriber that will not get anything more: what it missed counts as lost
  if (conn.done || conn.closed) return;
  noteError(`conn ${conn.index} lost: ${why}`);
  conn.closed = true;
  nDone++;
  if (nDone + nFailed >= conns.length) report('all done');
}

// bench/tokens: a streamed output whose words are "<i>:<t> " (t: seconds at the append);
// a request.delta carries one or more words (appends merged), a snapshot the text so far
let deltaEvents = 0;
function onWords(conn, text, snapshot = false) {
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf(' ', start);
    if (end < 0) end = text.length;
    const colon = text.indexOf(':', start);
    if (colon > start && colon < end) {
      const i = +text.slice(start, colon);
      // a snapshot repeats the words seen already: only the ones after them are new
      if (!snapshot || i > conn.lastI) onPayload(conn, { i, t: +text.slice(colon + 1, end) });
    }
    start = end + 1;
  }
}

// skillwire: events carry seq; outputs carry the payload in event.data
function onSkillwireEvent(conn, ev) {
  if (!conn.target) conn.target = ev.task_id;
  markReady(conn);
  if (ev.type === 'task.snapshot') {
    conn.lastSeq = ev.seq;
    const text = ev.data?.requests?.[0]?.output?.[0]?.text;
    if (typeof text === 'string') onWords(conn, text, true);
    return;
  }
  if (ev.seq <= conn.lastSeq) {
    conn.dups++;
    return;
  }
  if (ev.seq !== conn.lastSeq + 1) conn.seqGaps++;
  conn.lastSeq = ev.seq;
  if (ev.type === 'request.output' && ev.data && ev.data.t !== undefined) onPayload(conn, ev.data);
  else if (ev.type === 'request.delta' && typeof ev.data?.append === 'string') {
    conn.deltas++;
    deltaEvents++;
    onWords(conn, ev.data.append);
  } else if (TERMINAL.has(ev.type)) finish(conn);
}

function authHeaders() {
  return cfg.key ? { Authorization: `Bearer ${cfg.key}` } : {};
}

function openSkillwireWs(conn) {
  const gen = conn.gen;
  const ws = new WebSocket(`ws://${HOST}:${cfg.port}/api/v1/ws`, 'skillwire.v1', {
    headers: authHeaders(),
    perMessageDeflate: false,
    handshakeTimeout: 30000,
  });
  conn.handle = ws;
  const follow = () => {
    if (ws.readyState !== WebSocket.OPEN) return;
    if (conn.target) {
      ws.send(JSON.stringify({ op: 'subscribe', ref: 's', task_id: conn.target, after: conn.lastSeq }));
    } else {
      ws.send(JSON.stringify({ op: 'call', ref: 'c', app: cfg.app, skill: cfg.skill, requests: [conn.call] }));
    }
  };
  ws.on('open', follow);
  ws.on('message', (data) => {
    const text = data.toString();
    let start = 0;
    for (;;) {
      const nl = text.indexOf('\n', start);
      const line = nl < 0 ? text.slice(start) : text.slice(start, nl);
      if (line.length) {
        const msg = JSON.parse(line);
        if (msg.op === 'event') onSkillwireEvent(conn, msg.event);
        else if (msg.op === 'accepted') conn.target = msg.task_id;
        else if (msg.op === 'error') {
          // A failed subscription or call (e.g. 503): a client tries again, a few times.
          noteError(`conn ${conn.index}: ${JSON.stringify(msg.error)}`);
          if (conn.done) {
            /* nothing more expected */
          } else if (conn.retries < (cfg.max_retries ?? 10)) {
            conn.retries++;
            setTimeout(follow, Math.min(1000, 100 * conn.retries));
          } else {
            conn.gen++;
            if (!conn.ready) markFailed(conn, 'gave up after repeated errors');
            else giveUp(conn, 'gave up after repeated errors');
            closeConn(conn);
          }
        }
      }
      if (nl < 0) break;
      start = nl + 1;
    }
  });
  ws.on('close', (code, reason) => lost(conn, `ws closed ${code} ${reason}`, gen));
  ws.on('error', (e) => noteError(`conn ${conn.index}: ${e.message}`));
}

function openNaiveWs(conn) {
  const gen = conn.gen;
  const ws = new WebSocket(`ws://${HOST}:${cfg.port}/ws/${conn.target}`, { perMessageDeflate: false, handshakeTimeout: 30000 });
  conn.handle = ws;
  ws.on('message', (data) => {
    const msg = JSON.parse(data.toString());
    if (msg.ready) markReady(conn);
    else onPayload(conn, msg);
  });
  ws.on('close', (code) => lost(conn, `ws closed ${code}`, gen));
  ws.on('error', (e) => noteError(`conn ${conn.index}: ${e.message}`));
}

// A bare WebSocket server (scenario C's floor) accepts and then says nothing: a subscriber is
// ready once the handshake completes.
function openBareWs(conn) {
  const gen = conn.gen;
  const ws = new WebSocket(`ws://${HOST}:${cfg.port}/ws/${conn.target}`, { perMessageDeflate: false, handshakeTimeout: 30000 });
  conn.handle = ws;
  ws.on('open', () => markReady(conn));
  ws.on('close', (code) => lost(conn, `ws closed ${code}`, gen));
  ws.on('error', (e) => noteError(`conn ${conn.index}: ${e.message}`));
}

// SSE: blocks separated by a blank line (\n\n, or \r\n\r\n from sse-starlette)
function sseParser(onBlock) {
  let buf = '';
  return (chunk) => {
    buf += chunk;
    let start = 0;
    for (;;) {
      let end = buf.indexOf('\n\n', start);
      let sepLen = 2;
      const crlf = buf.indexOf('\r\n\r\n', start);
      if (crlf >= 0 && (end < 0 || crlf < end)) {
        end = crlf;
        sepLen = 4;
      }
      if (end < 0) break;
      onBlock(buf.slice(start, end));
      start = end + sepLen;
    }
    if (start) buf = buf.slice(start);
  };
}

function sseFields(block) {
  let event = 'message';
  let data = null;
  let id = null;
  for (const raw of block.split('\n')) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.startsWith('data:')) {
      const v = line.charCodeAt(5) === 32 ? line.slice(6) : line.slice(5);
      data = data === null ? v : data + '\n' + v;
    } else if (line.startsWith('event:')) event = line.slice(6).trim();
    else if (line.startsWith('id:')) id = line.slice(3).trim();
  }
  return { event, data, id };
}

function openSse(conn) {
  const gen = conn.gen;
  let path;
  let method = 'GET';
  let body = null;
  const headers = { Accept: 'text/event-stream', ...authHeaders() };
  if (cfg.system === 'skillwire') {
    if (conn.target) {
      path = `/api/v1/tasks/${conn.target}/events`;
      if (conn.lastSeq) headers['Last-Event-ID'] = String(conn.lastSeq);
    } else {
      method = 'POST';
      path = `/api/v1/apps/${cfg.app}/${cfg.skill}`;
      body = JSON.stringify({ requests: [conn.call] });
      headers['Content-Type'] = 'application/json';
    }
  } else {
    path = `/sse/${conn.target}`;
  }
  const req = http.request({ host: HOST, port: cfg.port, path, method, headers, agent: false });
  conn.handle = req;
  req.on('response', (res) => {
    if (res.statusCode !== 200) {
      res.resume();
      noteError(`conn ${conn.index}: HTTP ${res.statusCode}`);
      conn.gen++;
      if (res.statusCode === 503 && conn.retries < (cfg.max_retries ?? 10)) {
        conn.retries++;
        setTimeout(() => open(conn), Math.min(1000, 100 * conn.retries));
      } else markFailed(conn, `HTTP ${res.statusCode}`);
      return;
    }
    res.setEncoding('utf8');
    const feed = sseParser((block) => {
      const f = sseFields(block);
      if (f.data === null) return; // retry:, comments, heartbeats
      if (cfg.system === 'skillwire') onSkillwireEvent(conn, JSON.parse(f.data));
      else if (f.event === 'ready') markReady(conn);
      else onPayload(conn, JSON.parse(f.data));
    });
    res.on('data', feed);
    res.on('close', () => lost(conn, 'stream ended', gen));
    res.on('error', (e) => noteError(`conn ${conn.index}: ${e.message}`));
  });
  req.on('error', (e) => lost(conn, e.message, gen));
  if (body) req.write(body);
  req.end();
}

let ioFactory = null;
function openSocketio(conn) {
  const gen = conn.gen;
  if (!ioFactory) ioFactory = require('socket.io-client').io;
  const socket = ioFactory(`http://${HOST}:${cfg.port}`, {
    transports: ['websocket'],
    forceNew: true,
    reconnection: false,
    timeout: 30000,
    query: { room: conn.target },
  });
  conn.handle = socket;
  socket.on('ready', () => markReady(conn));
  socket.on('tick', (p) => onPayload(conn, p));
  socket.on('connect_error', (e) => markFailed(conn, `connect_error ${e.message}`));
  socket.on('disconnect', (why) => lost(conn, `disconnect ${why}`, gen));
}

// Raw Redis pub/sub: RESP2 push replies, parsed incrementally.
function respParser(onValue) {
  let buf = Buffer.alloc(0);
  function parse(pos) {
    if (pos >= buf.length) return null;
    const type = buf[pos];
    const eol = buf.indexOf('\r\n', pos);
    if (eol < 0) return null;
    const head = buf.toString('latin1', pos + 1, eol);
    if (type === 0x2a) {
      // *N array
      const n = parseInt(head, 10);
      const items = [];
      let p = eol + 2;
      for (let k = 0; k < n; k++) {
        const r = parse(p);
        if (r === null) return null;
        items.push(r.value);
        p = r.next;
      }
      return { value: items, next: p };
    }
    if (type === 0x24) {
      // $len bulk
      const len = parseInt(head, 10);
      if (len < 0) return { value: null, next: eol + 2 };
      const end = eol + 2 + len;
      if (end + 2 > buf.length) return null;
      return { value: buf.toString('utf8', eol + 2, end), next: end + 2 };
    }
    if (type === 0x3a) return { value: parseInt(head, 10), next: eol + 2 };
    if (type === 0x2b) return { value: head, next: eol + 2 };
    if (type === 0x2d) return { value: new Error(head), next: eol + 2 };
    throw new Error(`unexpected RESP type ${type}`);
  }
  return (chunk) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    let pos = 0;
    for (;;) {
      const r = parse(pos);
      if (r === null) break;
      onValue(r.value);
      pos = r.next;
    }
    buf = pos >= buf.length ? Buffer.alloc(0) : buf.subarray(pos);
  };
}

function openRedis(conn) {
  const gen = conn.gen;
  const sock = net.connect(cfg.port, HOST);
  conn.handle = sock;
  sock.setNoDelay(true);
  sock.on('connect', () => sock.write(`SUBSCRIBE ${conn.target}\r\n`));
  sock.on(
    'data',
    respParser((v) => {
      if (!Array.isArray(v)) return;
      if (v[0] === 'subscribe') markReady(conn);
      else if (v[0] === 'message') onPayload(conn, JSON.parse(v[2]));
    }),
  );
  sock.on('close', () => lost(conn, 'redis connection closed', gen));
  sock.on('error', (e) => noteError(`conn ${conn.index}: ${e.message}`));
}

function open(conn) {
  if (stopping) return;
  try {
    if (cfg.system === 'skillwire' && cfg.transport === 'ws') openSkillwireWs(conn);
    else if (cfg.transport === 'sse') openSse(conn);
    else if (cfg.system === 'naive') openNaiveWs(conn);
    else if (cfg.system === 'socketio') openSocketio(conn);
    else if (cfg.system === 'bare') openBareWs(conn);
    else if (cfg.system === 'redis') openRedis(conn);
    else throw new Error(`unknown system/transport ${cfg.system}/${cfg.transport}`);
  } catch (e) {
    markFailed(conn, e.message);
  }
}

// Connect in bounded parallel: first one connection per distinct target (a subscriber that
// creates a channel's subscription server-side), then the rest.
const connectStart = nowMs();
let queue = [];
let inFlight = 0;
function planConnects() {
  const seen = new Set();
  const first = [];
  const rest = [];
  for (const c of conns) {
    const key = c.target || `call-${c.index}`;
    if (seen.has(key)) rest.push(c);
    else {
      seen.add(key);
      first.push(c);
    }
  }
  queue = first;
  planConnects.rest = rest;
}
function pump() {
  const limit = cfg.connect_parallel || 100;
  while (inFlight < limit && queue.length) {
    const conn = queue.shift();
    conn.connecting = true;
    inFlight++;
    open(conn);
  }
  if (!queue.length && planConnects.rest && inFlight === 0) {
    queue = planConnects.rest;
    planConnects.rest = null;
    if (queue.length) pump();
  }
}

function maybeReportReady() {
  if (readyReported || nReady + nFailed < conns.length) return;
  readyReported = true;
  out({ event: 'ready', ready: nReady, failed: nFailed, connect_s: (nowMs() - connectStart) / 1000, errors });
}

// -- measurement window ------------------------------------------------------------------
let goAt = 0;
let cpu0 = null;
let reported = false;
function go() {
  if (measuring) return;
  measuring = true;
  goAt = nowMs();
  cpu0 = process.cpuUsage();
  if (expect === 0 || conns.length === 0) report('nothing to wait for');
  setTimeout(() => report('run timeout'), (cfg.run_timeout_s || 60) * 1000).unref();
  // Stalled: nothing arrived for stall_s seconds (a broken run ends early, counting its loss).
  let seen = -1;
  let quietSince = nowMs();
  const stall = setInterval(() => {
    if (reported) return clearInterval(stall);
    if (received !== seen) {
      seen = received;
      quietSince = nowMs();
    } else if (nowMs() - quietSince > (cfg.stall_s || 10) * 1000) report('stalled');
  }, 500);
  stall.unref();
}

function report(why) {
  if (reported) return;
  if (!measuring && why === 'all done') {
    // everything finished before "go" (e.g. a tiny run): still a valid result
    go();
  }
  reported = true;
  stopping = !cfg.idle;
  const end = nowMs();
  const cpu = process.cpuUsage(cpu0 || undefined);
  const wallMs = end - (goAt || end);
  if (cfg.lat_file) samples.write(cfg.lat_file);
  let minGot = Infinity;
  let maxGot = 0;
  let dups = 0;
  let gaps = 0;
  let seqGaps = 0;
  let reconnects = 0;
  let retries = 0;
  for (const c of conns) {
    retries += c.retries;
    minGot = Math.min(minGot, c.got);
    maxGot = Math.max(maxGot, c.got);
    dups += c.dups;
    gaps += c.gaps;
    seqGaps += c.seqGaps;
    reconnects += c.reconnects;
  }
  out({
    event: 'result',
    why,
    conns: conns.length,
    ready: nReady,
    failed: nFailed,
    done: nDone,
    expected: expect * conns.length,
    received,
    deltas: deltaEvents,
    dups,
    gaps,
    seq_gaps: seqGaps,
    reconnects,
    retries,
    min_per_conn: conns.length ? minGot : 0,
    max_per_conn: maxGot,
    first_t_ms: Number.isFinite(firstT) ? firstT : null,
    last_recv_ms: lastRecv || null,
    go_ms: goAt,
    end_ms: end,
    wall_s: wallMs / 1000,
    cpu_user_s: cpu.user / 1e6,
    cpu_sys_s: cpu.system / 1e6,
    cpu_pct: wallMs > 0 ? (100 * (cpu.user + cpu.system)) / 1000 / wallMs : null,
    rss_kib: Math.round(process.memoryUsage().rss / 1024),
    lat_n: samples.n,
    lat_file: cfg.lat_file || null,
    errors,
  });
  if (!cfg.idle) shutdown(0);
}

function shutdown(code) {
  stopping = true;
  for (const c of conns) closeConn(c);
  setTimeout(() => process.exit(code), 200).unref();
}

// -- HTTP call loop (scenarios D and E) --------------------------------------------------
function runHttp() {
  const agent = new http.Agent({ keepAlive: true, maxSockets: cfg.concurrency });
  const body = Buffer.from(cfg.body);
  const headers = {
    'Content-Type': 'application/json',
    'Content-Length': body.length,
    ...authHeaders(),
    ...(cfg.headers || {}),
  };
  const lat = new Samples(100000);
  const warmup = cfg.warmup_calls || 0;
  const maxCalls = cfg.max_calls || 100000;
  let issued = 0;
  let ok = 0;
  let bad = 0;
  const statuses = {};
  let started = 0;
  let t0 = 0;
  let cpuStart = null;
  let deadline = Infinity;
  let active = 0;

  function one() {
    return new Promise((resolve) => {
      const t = nowMs();
      const req = http.request({ host: HOST, port: cfg.port, path: cfg.path, method: 'POST', headers, agent }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const dt = nowMs() - t;
          statuses[res.statusCode] = (statuses[res.statusCode] || 0) + 1;
          const text = Buffer.concat(chunks).toString();
          const good = res.statusCode === 200 && (!cfg.expect_substring || text.includes(cfg.expect_substring));
          if (!good) noteError(`HTTP ${res.statusCode}: ${text.slice(0, 200)}`);
          resolve({ dt, good });
        });
      });
      req.on('error', (e) => {
        noteError(e.message);
        resolve({ dt: nowMs() - t, good: false });
      });
      req.end(body);
    });
  }

  async function worker() {
    active++;
    while (issued < warmup + maxCalls && nowMs() < deadline) {
      const k = issued++;
      if (k === warmup) {
        t0 = nowMs();
        cpuStart = process.cpuUsage();
        deadline = t0 + cfg.duration_s * 1000;
        out({ event: 'measuring' });
      }
      const r = await one();
      if (k >= warmup) {
        if (r.good) {
          ok++;
          lat.push(r.dt);
        } else bad++;
      }
    }
    active--;
    if (active === 0) done();
  }

  function done() {
    const end = nowMs();
    const cpu = process.cpuUsage(cpuStart || undefined);
    const wallMs = end - (t0 || end);
    if (cfg.lat_file) lat.write(cfg.lat_file);
    agent.destroy();
    out({
      event: 'result',
      ok,
      bad,
      statuses,
      wall_s: wallMs / 1000,
      calls_per_s: wallMs > 0 ? ok / (wallMs / 1000) : 0,
      cpu_pct: wallMs > 0 ? (100 * (cpu.user + cpu.system)) / 1000 / wallMs : null,
      rss_kib: Math.round(process.memoryUsage().rss / 1024),
      lat_n: lat.n,
      lat_file: cfg.lat_file || null,
      errors,
    });
    setTimeout(() => process.exit(0), 50).unref();
  }

  started = nowMs();
  out({ event: 'ready', ready: cfg.concurrency, failed: 0, connect_s: 0, errors });
  for (let k = 0; k < cfg.concurrency; k++) worker();
}

// -- control -----------------------------------------------------------------------------
const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const cmd = line.trim();
  if (cmd === 'go') go();
  else if (cmd === 'stop') {
    if (!measuring) go();
    report('stopped');
  } else if (cmd === 'close') {
    if (!reported) {
      if (!measuring) go();
      report('closed');
    }
    shutdown(0);
  }
});
rl.on('close', () => {
  // the orchestrator went away: never outlive it
  if (!reported && measuring) report('stdin closed');
  shutdown(0);
});

const hard = setTimeout(() => {
  if (!reported) {
    if (!measuring) go();
    report('hard timeout');
  }
  shutdown(2);
}, (cfg.hard_timeout_s || 300) * 1000);
hard.unref();

if (cfg.mode === 'http') runHttp();
else {
  planConnects();
  pump();
  if (conns.length === 0) maybeReportReady();
  const progress = setInterval(() => {
    if (readyReported) return clearInterval(progress);
    out({ event: 'progress', ready: nReady, failed: nFailed, connecting: inFlight, queued: queue.length, errors: errors.slice(0, 3) });
  }, 5000);
  progress.unref();
}
