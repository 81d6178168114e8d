/**
 * skillwire.js: the browser client of skillwire API v1.
 *
 * One ES module, no dependencies, no build step. Served by the server at `/skillwire.js`;
 * `clients/js/skillwire.js` in the repository is a link to this file.
 *
 *     import { SkillwireClient } from "/skillwire.js";
 *     const client = new SkillwireClient({ apiKey: "sk_..." });
 *     const sub = await client.stream("demo", "countdown", [{ n: 5 }], {
 *       onEvent: (event) => console.log(event.seq, event.type, event.data),
 *     });
 *     const last = await sub.done;   // the terminal event
 *
 * Transports, in order: WebSocket (`ws`), EventSource (`sse`), long polling (`poll`).
 * A WebSocket that drops, or closes with 1012/1013, is reopened after a jittered backoff and
 * every subscription resumes after the last seq it delivered. When WebSocket cannot connect
 * at all, subscriptions move to EventSource (a fresh single-use ticket per connection, as an
 * EventSource cannot send headers), and from there to polling. Each subscription delivers
 * every event exactly once, in seq order, whatever the transport does underneath.
 *
 * Streamed outputs (an LLM's answer: one output grown by `request.delta` events) are kept up
 * to date in `subscription.outputs` (a `TaskOutputs`), and `client.streamText()` hands out the
 * text of one as it grows, each character once, across resumes and snapshots:
 *
 *     for await (const chunk of client.streamText(taskId)) element.textContent += chunk;
 *
 * Credentials never go into a URL: REST calls send `Authorization: Bearer <key>`, the
 * WebSocket sends the key in its first message (`auth` op), and EventSource URLs carry only a
 * single-use ticket. With `getTicket` instead of `apiKey` (a page whose own backend issues
 * tickets) the WebSocket connects with `?ticket=` and the key never reaches the browser.
 *
 * Errors: every failure is a `SkillwireError` with the API's error `code`, the HTTP `status`,
 * `details`, `requestId` and `temporary` (may a retry succeed?).
 *
 * @module skillwire
 */

export const VERSION = "0.1.0";
export const SUBPROTOCOL = "skillwire.v1";

/** Event types whose event ends a task's stream. */
export const TERMINAL_TYPES = Object.freeze([
  "task.completed",
  "task.partial",
  "task.failed",
  "task.cancelled",
]);
const TERMINAL = new Set(TERMINAL_TYPES);
const TERMINAL_STATUSES = new Set(["completed", "partial", "failed", "cancelled"]);

/** Every event type of API v1: EventSource only delivers the named events it listens for. */
const EVENT_TYPES = [
  "task.queued",
  "task.started",
  "task.snapshot",
  "request.started",
  "request.queued",
  "request.progress",
  "request.output",
  "request.delta",
  "request.completed",
  "request.failed",
  ...TERMINAL_TYPES,
];
/** Types this client knows; API.md asks clients to skip the others (the contract grows). */
const KNOWN_TYPES = new Set(EVENT_TYPES);
const RESET_TYPES = new Set(["task.snapshot", ...TERMINAL_TYPES]);
const REQUEST_ENDS = new Set(["request.completed", "request.failed"]);

const ALL_TRANSPORTS = ["ws", "sse", "poll"];
const CLOSE_UNAUTHENTICATED = 4401;
const CLOSE_FORBIDDEN = 4403;
const CLOSE_DROPPED = 4000; // our own code for a connection we abandon (idle, _debugDrop)

// A response without an error envelope (a proxy's page, say) maps by its status, as the
// Python client does; a proxy's 502 or 504 while the gateway restarts is worth a retry.
// Any other status is INTERNAL_ERROR. (tests/browser/test_js_tables.py pins both tables.)
const CODE_BY_STATUS = {
  400: "BAD_REQUEST",
  401: "UNAUTHORIZED",
  403: "FORBIDDEN",
  404: "NOT_FOUND",
  405: "METHOD_NOT_ALLOWED",
  409: "CONFLICT",
  410: "EXPIRED",
  413: "PAYLOAD_TOO_LARGE",
  422: "VALIDATION_ERROR",
  429: "RATE_LIMITED",
  502: "SERVICE_UNAVAILABLE",
  503: "SERVICE_UNAVAILABLE",
  504: "SERVICE_UNAVAILABLE",
};
// The API's temporary codes (the protocol's errors with ``temporary``), and this client's own
// two for a connection that failed or dropped.
const TEMPORARY_CODES = new Set([
  "NETWORK_ERROR",
  "CONNECTION_LOST",
  "RATE_LIMITED",
  "SERVICE_UNAVAILABLE",
]);

/**
 * @typedef {"ws" | "sse" | "poll"} Transport
 *
 * @typedef {Object} SkillwireEvent
 * @property {string} task_id
 * @property {number} seq       starts at 1, grows by 1 per task
 * @property {string} type      e.g. "request.output"; see API.md, Events
 * @property {string} time      RFC 3339, UTC
 * @property {number} [index]   the sub-request, on `request.*` events only
 * @property {any} data
 *
 * @typedef {Object} SubRequest
 * @property {number} index
 * @property {"queued"|"running"|"completed"|"failed"|"cancelled"} status
 * @property {number} progress
 * @property {any[]} output
 * @property {number} [outputs_dropped]  outputs that left the Task (output n is at
 *   output[n - outputs_dropped])
 * @property {any} [result]   the data of the request's `request.completed`
 * @property {{code: string, message: string, details: Object}|null} error
 *
 * @typedef {Object} Task
 * @property {string} task_id
 * @property {string} app
 * @property {string} skill
 * @property {"queued"|"running"|"completed"|"partial"|"failed"|"cancelled"} status
 * @property {string} created_at
 * @property {string} updated_at
 * @property {string|null} finished_at
 * @property {SubRequest[]} requests
 * @property {any[]} previews
 * @property {Object|null} error
 * @property {number} last_seq
 * @property {Object} metadata
 * @property {{self: string, events: string}} links
 *
 * @typedef {Object} Skill
 * @property {string} app
 * @property {string} skill
 * @property {string} description
 * @property {"quick"|"long"} mode
 * @property {Object} input_schema   JSON Schema of one sub-request
 * @property {number} max_requests
 *
 * @typedef {Object} Status
 * @property {"connecting"|"open"|"reconnecting"|"done"|"failed"|"closed"} state
 * @property {Transport|null} transport
 * @property {number} [delay]    ms until the next attempt, when reconnecting
 * @property {number} [attempt]  consecutive failed attempts so far
 * @property {number} [code]     the WebSocket close code that caused a reconnect
 *
 * @typedef {Object} SubscribeOptions
 * @property {number} [after]      deliver events with seq > after (default 0: all of them)
 * @property {boolean} [snapshot]  start with one `task.snapshot` event (the Task as of seq N)
 * @property {Task} [task]  a Task to start from: it seeds `subscription.outputs`, and `after`
 *   defaults to its `last_seq`
 * @property {(event: SkillwireEvent) => void} [onEvent]
 * @property {(error: SkillwireError) => void} [onError]   the subscription failed for good
 * @property {(status: Status) => void} [onStatus]
 *
 * @typedef {Object} CallOptions
 * @property {number|false} [wait]   seconds to wait for the result (`Prefer: wait=N`);
 *   0 or false: answer at once (`Prefer: respond-async`); unset: the server's default
 * @property {Object} [metadata]
 * @property {string} [webhookUrl]
 * @property {string} [idempotencyKey]
 *
 * @typedef {Object} ClientOptions
 * @property {string} [baseUrl]   e.g. "https://skillwire.example.org"; default: this page's origin
 * @property {string} [apiKey]    sent in headers and in the WebSocket `auth` op, never in a URL
 * @property {() => Promise<string|{ticket: string}>} [getTicket]  a fresh single-use ticket;
 *   default: `POST /api/v1/tickets` with the key
 * @property {Transport[]} [transports]  the transports to use, in order (default all three)
 * @property {Record<string, string>} [headers]  extra headers for every REST call
 * @property {{initial?: number, max?: number}} [backoff]  reconnect delays in ms (250, 10000)
 * @property {number} [connectAttempts]  failed first connections before a transport is given
 *   up for the next one (default 2)
 * @property {number} [pollWait]     seconds per long poll (default 25)
 * @property {number} [idleTimeout]  ms without any WebSocket message (heartbeats included)
 *   before the connection counts as dead (default 45000)
 * @property {(error: SkillwireError) => void} [onError]  errors tied to no subscription
 * @property {typeof WebSocket} [WebSocket]      for tests and other runtimes
 * @property {typeof EventSource} [EventSource]
 * @property {typeof fetch} [fetch]
 */

/** Any failure: an API error envelope, a network error or a closed connection. */
export class SkillwireError extends Error {
  /**
   * @param {string} code  the API's error code, or NETWORK_ERROR, CONNECTION_LOST,
   *   TRANSPORT_UNAVAILABLE
   * @param {string} message
   * @param {{status?: number, details?: Object, requestId?: string|null,
   *   retryAfter?: number|null, closeCode?: number|null}} [extra]
   */
  constructor(code, message, extra = {}) {
    super(message);
    this.name = "SkillwireError";
    this.code = code;
    this.status = extra.status ?? 0;
    this.details = extra.details ?? {};
    this.requestId = extra.requestId ?? null;
    this.retryAfter = extra.retryAfter ?? null;
    this.closeCode = extra.closeCode ?? null;
  }

  /** May the same request succeed later? */
  get temporary() {
    return TEMPORARY_CODES.has(this.code);
  }

  /** @param {{code?: string, message?: string, details?: Object}} body */
  static fromBody(body, extra = {}) {
    return new SkillwireError(body.code || "INTERNAL_ERROR", body.message || "error", {
      ...extra,
      details: body.details,
    });
  }
}

/**
 * One task's events, delivered exactly once in seq order. Returned by `subscribe()` and
 * `stream()`.
 */
export class Subscription {
  /**
   * @param {SkillwireClient} client
   * @param {string|null} taskId
   * @param {SubscribeOptions} options
   */
  constructor(client, taskId, options) {
    /** @type {string|null} */
    this.taskId = taskId;
    /** @type {Transport|null} the transport delivering events now */
    this.transport = null;
    /** @type {Promise<SkillwireEvent|null>} the terminal event (or null once unsubscribed);
     * rejects with the error that ended the subscription */
    this.done = new Promise((resolve, reject) => {
      this._resolve = resolve;
      this._reject = reject;
    });
    this.done.catch(() => {});
    this._client = client;
    this._last = options.after ?? options.task?.last_seq ?? 0;
    /** @type {TaskOutputs} each request's outputs, kept up to date as events arrive */
    this.outputs = new TaskOutputs(options.task);
    this._snapshot = Boolean(options.snapshot);
    this._options = options;
    this._delivered = 0;
    this._closed = false;
    /** @type {{close(reason: string): void, drop(): void}|null} */
    this._feed = null;
  }

  /** The seq of the last event delivered. */
  get lastSeq() {
    return this._last;
  }

  /** Has the subscription ended (terminal event, error or unsubscribe)? */
  get closed() {
    return this._closed;
  }

  /** Stop receiving events. The task itself goes on (see `client.cancel()`). */
  unsubscribe() {
    if (this._closed) return;
    this._end("closed", "unsubscribed");
    this._resolve(null);
  }

  /** @param {SkillwireEvent} event */
  _deliver(event) {
    if (this._closed || typeof event?.seq !== "number") return;
    if (!KNOWN_TYPES.has(event.type)) return; // a newer server's type: skipped, as API.md asks
    const asked =
      event.type === "task.snapshot" && this._snapshot && this._delivered === 0;
    if (event.seq < this._last || (event.seq === this._last && !asked)) return;
    this._last = event.seq;
    this._delivered += 1;
    this._appended = this.outputs.apply(event);
    safely(this._options.onEvent, event);
    const finished =
      TERMINAL.has(event.type) ||
      (event.type === "task.snapshot" && TERMINAL_STATUSES.has(event.data?.status));
    if (finished && !this._closed) {
      this._end("done", "finished");
      this._resolve(event);
    }
  }

  /** The task ended before any further event could be delivered (seen by polling). */
  _finishQuietly() {
    if (this._closed) return;
    this._end("done", "finished");
    this._resolve(null);
  }

  /** @param {SkillwireError} error */
  _fail(error) {
    if (this._closed) return;
    this._end("failed", "failed");
    safely(this._options.onError, error);
    this._reject(error);
  }

  /** @param {Status["state"]} state @param {Object} [extra] */
  _status(state, extra = {}) {
    if (this._closed) return;
    safely(this._options.onStatus, { state, transport: this.transport, ...extra });
  }

  _end(state, reason) {
    const feed = this._feed;
    this._feed = null;
    safely(this._options.onStatus, { state, transport: this.transport });
    this._closed = true;
    this._client._subs.delete(this);
    feed?.close(reason);
  }
}

/**
 * What one applied `request.delta` did: `append` went onto `field` of output `n` of request
 * `index`, whose value was `before` characters long.
 * @typedef {{index: number, n: number, field: string, before: number, append: string}} Appended
 */

/**
 * The outputs of each request of one task, kept up to date from its events (API.md,
 * "Streamed outputs"): `request.output` adds an output, `request.delta` grows a string field
 * of one, `request.started` starts a request afresh, and a `task.snapshot` or terminal event
 * replaces everything with the Task it carries. Output `n` of a request counts from 0 since
 * its latest `request.started`, including outputs the Task no longer holds: it sits at
 * `output[n - outputsDropped]`. Events at or below the last seq applied are ignored.
 */
export class TaskOutputs {
  /** @param {Task} [task] the Task to start from */
  constructor(task) {
    /** @type {Map<number, {output: any[], outputsDropped: number}>} */
    this.requests = new Map();
    this.lastSeq = 0;
    if (task) this.reset(task);
  }

  /** Start again from `task`. @param {Task} task */
  reset(task) {
    this.requests = new Map();
    for (const request of task?.requests ?? []) {
      this.requests.set(request.index, {
        // copies: outputs are grown in place, never the event's own objects
        output: (request.output ?? []).map(copyItem),
        outputsDropped: request.outputs_dropped ?? 0,
      });
    }
    if (typeof task?.last_seq === "number") this.lastSeq = task.last_seq;
  }

  /** The outputs of request `index` (created empty). */
  request(index = 0) {
    let held = this.requests.get(index);
    if (!held) this.requests.set(index, (held = { output: [], outputsDropped: 0 }));
    return held;
  }

  /**
   * Apply one event; returns the append when it was a delta that applied, else null.
   * @param {SkillwireEvent} event @returns {Appended|null}
   */
  apply(event) {
    if (event.seq < this.lastSeq || (event.seq === this.lastSeq && !RESET_TYPES.has(event.type))) {
      return null; // applied already
    }
    this.lastSeq = event.seq;
    if (RESET_TYPES.has(event.type)) {
      if (event.data && typeof event.data === "object") this.reset(event.data);
      return null;
    }
    if (typeof event.index !== "number") return null;
    if (event.type === "request.started") {
      this.requests.set(event.index, { output: [], outputsDropped: 0 });
    } else if (event.type === "request.output") {
      this.request(event.index).output.push(copyItem(event.data));
    } else if (event.type === "request.delta") {
      const { output: n, field, append } = event.data ?? {};
      if (typeof append !== "string" || typeof field !== "string") return null;
      const item = this.get(event.index, n);
      if (!item || typeof item !== "object" || typeof item[field] !== "string") return null;
      const before = item[field].length;
      item[field] += append;
      return { index: event.index, n, field, before, append };
    }
    return null;
  }

  /** The outputs request `index` holds now. */
  output(index = 0) {
    return this.request(index).output;
  }

  /** Output number `n` of request `index`, or undefined when the Task does not hold it. */
  get(index, n) {
    const held = this.request(index);
    return Number.isInteger(n) ? held.output[n - held.outputsDropped] : undefined;
  }

  /** The number of the first output of request `index` whose `field` is a string, or null. */
  streamed(index = 0, field = "text") {
    const held = this.request(index);
    const position = held.output.findIndex(
      (item) => item && typeof item === "object" && typeof item[field] === "string",
    );
    return position < 0 ? null : held.outputsDropped + position;
  }

  /**
   * String `field` of output `output` of request `index` (default: the first output that
   * has it); "" when there is none.
   */
  text({ index = 0, output = null, field = "text" } = {}) {
    const n = output ?? this.streamed(index, field);
    const value = n === null ? undefined : this.get(index, n)?.[field];
    return typeof value === "string" ? value : "";
  }
}

function copyItem(item) {
  return item && typeof item === "object" && !Array.isArray(item) ? { ...item } : item;
}

/**
 * What of one streamed text was handed out already: `advance()` after each event returns
 * the characters not handed out yet (the delta's own text, or after a snapshot or a re-run
 * the part beyond what was handed out), so each character comes out exactly once.
 */
class TextCursor {
  constructor(outputs, { index = 0, output = null, field = "text" } = {}) {
    this.outputs = outputs;
    this.index = index;
    this.n = output;
    this.field = field;
    this.sent = 0;
  }

  /** @param {Appended|null} [appended] */
  advance(appended = null) {
    this.n ??= this.outputs.streamed(this.index, this.field);
    if (this.n === null) return "";
    if (
      appended &&
      appended.before === this.sent &&
      appended.index === this.index &&
      appended.n === this.n &&
      appended.field === this.field
    ) {
      this.sent += appended.append.length;
      return appended.append;
    }
    const text = this.outputs.text({ index: this.index, output: this.n, field: this.field });
    if (text.length <= this.sent) return "";
    const chunk = text.slice(this.sent);
    this.sent = text.length;
    return chunk;
  }
}

/**
 * The text of one streamed output as it grows, from `client.streamText()`: an async iterable
 * of chunks (each character once, in order), with `text` (everything so far), `done` (the
 * whole text once the request or task ended) and the underlying `subscription`.
 */
export class TextStream {
  /**
   * @param {SkillwireClient} client @param {string|Task} task
   * @param {{index?: number, output?: number, field?: string, onText?: (chunk: string,
   *   text: string) => void, onStatus?: (status: Status) => void,
   *   onError?: (error: SkillwireError) => void}} options
   */
  constructor(client, task, options) {
    const { index = 0, output = null, field = "text" } = options;
    this.text = "";
    this._chunks = [];
    this._wake = null;
    this._ended = false;
    this._error = null;
    this.done = new Promise((resolve, reject) => {
      this._resolve = resolve;
      this._reject = reject;
    });
    this.done.catch(() => {});
    const byTask = typeof task === "object" && task !== null;
    const handOut = (chunk) => {
      if (!chunk) return;
      this.text += chunk;
      this._chunks.push(chunk);
      safely(options.onText?.bind(null, chunk), this.text);
      this._wakeUp();
    };
    const onEvent = (event) => {
      const sub = this.subscription;
      handOut(cursor.advance(sub._appended));
      if (event.index === index && REQUEST_ENDS.has(event.type)) {
        sub.unsubscribe();
        this._end();
      }
    };
    if (byTask && TERMINAL_STATUSES.has(task.status)) {
      // A finished Task holds the whole text: nothing to follow.
      /** @type {Subscription|null} null when given a finished Task */
      this.subscription = null;
      handOut(new TextCursor(new TaskOutputs(task), { index, output, field }).advance());
      this._end();
      return;
    }
    this.subscription = client.subscribe(byTask ? task.task_id : task, {
      task: byTask ? task : undefined,
      snapshot: !byTask,
      onEvent,
      onStatus: options.onStatus,
      onError: options.onError,
    });
    const cursor = new TextCursor(this.subscription.outputs, { index, output, field });
    handOut(cursor.advance());
    this.subscription.done.then(
      () => this._end(),
      (error) => this._end(error),
    );
  }

  _wakeUp() {
    const wake = this._wake;
    this._wake = null;
    wake?.();
  }

  _end(error = null) {
    if (this._ended) return;
    this._ended = true;
    this._error = error;
    if (error) this._reject(error);
    else this._resolve(this.text);
    this._wakeUp();
  }

  /** Stop following (the task goes on). */
  close() {
    this.subscription?.unsubscribe();
    this._end();
  }

  async *[Symbol.asyncIterator]() {
    try {
      while (true) {
        if (this._chunks.length) {
          yield this._chunks.shift();
        } else if (this._ended) {
          if (this._error) throw this._error;
          return;
        } else {
          await new Promise((resolve) => (this._wake = resolve));
        }
      }
    } finally {
      if (!this._ended) this.close();
    }
  }
}

/** The client: REST calls, and subscriptions over the best transport available. */
export class SkillwireClient {
  /** @param {ClientOptions} options */
  constructor(options = {}) {
    if (!options.apiKey && !options.getTicket) {
      throw new TypeError("SkillwireClient needs an apiKey or a getTicket function");
    }
    const origin = globalThis.location?.origin ?? "";
    this.baseUrl = String(options.baseUrl ?? origin).replace(/\/+$/, "");
    this._apiKey = options.apiKey ?? null;
    this._getTicket = options.getTicket ?? null;
    this._headers = { ...(options.headers ?? {}) };
    this._fetch = options.fetch ?? globalThis.fetch?.bind(globalThis);
    this._WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this._EventSource = options.EventSource ?? globalThis.EventSource;
    this._backoffInitial = options.backoff?.initial ?? 250;
    this._backoffMax = options.backoff?.max ?? 10_000;
    this._connectAttempts = options.connectAttempts ?? 2;
    this._pollWait = options.pollWait ?? 25;
    this._idleTimeout = options.idleTimeout ?? 45_000;
    this._onError = options.onError;
    const wanted = options.transports ?? ALL_TRANSPORTS;
    for (const name of wanted) {
      if (!ALL_TRANSPORTS.includes(name)) throw new TypeError(`unknown transport ${name}`);
    }
    /** @type {Transport[]} the transports this client may use, in order */
    this.transports = wanted.filter((name) => this._present(name));
    /** @type {Set<Transport>} transports that never managed to connect */
    this._unavailable = new Set();
    /** @type {Set<Transport>} transports that connected at least once */
    this._works = new Set();
    /** @type {Set<Subscription>} */
    this._subs = new Set();
    this._link = null;
  }

  /** The transport the client would use for a new subscription now. @returns {Transport|null} */
  get transport() {
    return this.transports.find((name) => !this._unavailable.has(name)) ?? null;
  }

  // -- REST ------------------------------------------------------------------------------

  /** Every app and its skills. @returns {Promise<{items: {app: string, skills: Skill[]}[]}>} */
  apps() {
    return this._request("GET", "/api/v1/apps");
  }

  /** One skill's description. @returns {Promise<Skill>} */
  skill(app, skill) {
    return this._request("GET", `/api/v1/apps/${enc(app)}/${enc(skill)}`);
  }

  /**
   * Call a skill with one or more sub-requests; answers the Task (finished or not).
   * @param {string} app @param {string} skill @param {Object[]} requests
   * @param {CallOptions} [options]
   * @returns {Promise<Task>}
   */
  call(app, skill, requests, options = {}) {
    const headers = {};
    if (options.wait === false || options.wait === 0) headers.Prefer = "respond-async";
    else if (typeof options.wait === "number") headers.Prefer = `wait=${options.wait}`;
    if (options.idempotencyKey) headers["Idempotency-Key"] = options.idempotencyKey;
    const body = { requests, version: "1" };
    if (options.metadata) body.metadata = options.metadata;
    if (options.webhookUrl) body.webhook_url = options.webhookUrl;
    return this._request("POST", `/api/v1/apps/${enc(app)}/${enc(skill)}`, { body, headers });
  }

  /**
   * A task; with `wait` (seconds), long-polls until it is finished or the time is up.
   * @param {string} taskId @param {{wait?: number, signal?: AbortSignal}} [options]
   * @returns {Promise<Task>}
   */
  task(taskId, options = {}) {
    const query = options.wait ? { wait: options.wait } : undefined;
    return this._request("GET", `/api/v1/tasks/${enc(taskId)}`, {
      query,
      signal: options.signal,
    });
  }

  /** The caller's tasks, newest first. */
  tasks({ limit = 50, offset = 0, status, app, skill } = {}) {
    const query = { limit, offset, status, app, skill };
    return this._request("GET", "/api/v1/tasks", { query });
  }

  /**
   * Cancel a task: the cancelled Task (REST), or null when sent over the WebSocket because
   * the client has no key to authenticate REST calls with (`getTicket` only).
   * @param {string} taskId
   * @returns {Promise<Task|null>}
   */
  async cancel(taskId) {
    if (this._apiKey || !this._allowed("ws")) {
      return this._request("DELETE", `/api/v1/tasks/${enc(taskId)}`);
    }
    await this._wsLink().request({ op: "cancel", task_id: taskId });
    return null;
  }

  /** A fresh single-use ticket for a WebSocket or EventSource URL. @returns {Promise<string>} */
  async ticket() {
    if (this._getTicket) {
      const got = await this._getTicket();
      return typeof got === "string" ? got : got.ticket;
    }
    const body = await this._request("POST", "/api/v1/tickets");
    return body.ticket;
  }

  // -- streaming -------------------------------------------------------------------------

  /**
   * Follow a task's events (after `options.after`), over the first transport that works.
   * @param {string} taskId @param {SubscribeOptions} [options]
   * @returns {Subscription}
   */
  subscribe(taskId, options = {}) {
    const sub = new Subscription(this, taskId, options);
    this._subs.add(sub);
    this._attach(sub);
    if (sub._last > 0 && this._apiKey) this._endIfPast(sub);
    return sub;
  }

  /**
   * The text of a streamed output as it grows: `for await (const chunk of
   * client.streamText(taskId)) ...`. Follows output `output` of request `index` (default:
   * the first output of that request whose `field`, default "text", is a string) until the
   * request or the task ends. With a task id the subscription starts with a snapshot (the
   * text so far in one chunk); with a Task, from that Task on. Resumes hand out only the
   * characters not handed out yet.
   * @param {string|Task} task
   * @param {{index?: number, output?: number, field?: string, onText?: Function,
   *   onStatus?: Function, onError?: Function}} [options]
   * @returns {TextStream}
   */
  streamText(task, options = {}) {
    return new TextStream(this, task, options);
  }

  /**
   * Call a skill and follow its events from the first one: over the WebSocket (`call` op)
   * when it is available, else a REST call followed by a subscription. Resolves once the
   * task exists; `subscription.done` resolves with the terminal event.
   * @param {string} app @param {string} skill @param {Object[]} requests
   * @param {SubscribeOptions & {metadata?: Object, webhookUrl?: string}} [options]
   * @returns {Promise<Subscription>}
   */
  async stream(app, skill, requests, options = {}) {
    const sub = new Subscription(this, null, { ...options, after: 0, snapshot: false });
    if (this._allowed("ws")) {
      const op = { op: "call", app, skill, requests };
      if (options.metadata) op.metadata = options.metadata;
      if (options.webhookUrl) op.webhook_url = options.webhookUrl;
      try {
        await this._wsLink().request(op, (reply) => {
          // Synchronous: the task's first events may follow in the same frame.
          sub.taskId = reply.task_id;
          this._subs.add(sub);
          this._wsLink().adopt(sub);
        });
        return sub;
      } catch (error) {
        if (error.code !== "TRANSPORT_UNAVAILABLE") throw error;
      }
    }
    const task = await this.call(app, skill, requests, {
      wait: false,
      metadata: options.metadata,
      webhookUrl: options.webhookUrl,
    });
    sub.taskId = task.task_id;
    this._subs.add(sub);
    this._attach(sub);
    return sub;
  }

  /** End every subscription and close the WebSocket. */
  close() {
    for (const sub of [...this._subs]) sub.unsubscribe();
    this._link?.shutdown();
    this._link = null;
  }

  /** Test hook: drop every live connection as a network failure would (then resume). */
  _debugDrop() {
    this._link?.drop();
    for (const sub of this._subs) if (sub.transport !== "ws") sub._feed?.drop();
  }

  // -- internals -------------------------------------------------------------------------

  _present(name) {
    if (name === "ws") return typeof this._WebSocket === "function";
    if (name === "sse") return typeof this._EventSource === "function";
    return typeof this._fetch === "function";
  }

  _allowed(name) {
    return this.transports.includes(name) && !this._unavailable.has(name);
  }

  /** Put a subscription on the first usable transport. @param {Subscription} sub */
  _attach(sub) {
    const name = this.transport;
    sub.transport = name;
    if (name === "ws") this._wsLink().adopt(sub, { subscribe: true });
    else if (name === "sse") sub._feed = new SseFeed(this, sub);
    else if (name === "poll") sub._feed = new PollFeed(this, sub);
    else sub._fail(new SkillwireError("TRANSPORT_UNAVAILABLE", "no transport could connect"));
  }

  /**
   * A finished task whose last seq is at or below `after` sends nothing on any channel (its
   * stream just ends): look it up once, so such a subscription ends instead of waiting.
   * @param {Subscription} sub
   */
  async _endIfPast(sub) {
    try {
      const task = await this.task(sub.taskId);
      if (TERMINAL_STATUSES.has(task.status) && task.last_seq <= sub._last) sub._finishQuietly();
    } catch {
      // the transport reports errors of its own
    }
  }

  /**
   * A transport failed before it ever connected: move its subscriptions on to the next one.
   * False (keep retrying) when it has worked before or no other transport is left.
   */
  _giveUp(name, subs) {
    if (this._works.has(name)) return false;
    const others = this.transports.filter((t) => t !== name && !this._unavailable.has(t));
    if (!others.length) return false;
    this._unavailable.add(name);
    for (const sub of subs) {
      if (!sub.closed) this._attach(sub);
    }
    return true;
  }

  _wsLink() {
    this._link ??= new WsLink(this);
    return this._link;
  }

  /** Jittered exponential backoff: between half and all of min(max, initial * 2^attempt). */
  _delay(attempt) {
    const ceiling = Math.min(this._backoffMax, this._backoffInitial * 2 ** attempt);
    return ceiling / 2 + (Math.random() * ceiling) / 2;
  }

  _url(path, query) {
    const url = new URL(this.baseUrl + path, globalThis.location?.href);
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value !== undefined && value !== null) url.searchParams.set(key, String(value));
    }
    return url.toString();
  }

  _wsUrl(path, query) {
    const url = new URL(this._url(path, query));
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return url.toString();
  }

  async _request(method, path, { query, body, headers, signal } = {}) {
    const all = { Accept: "application/json", ...this._headers, ...headers };
    if (this._apiKey) all.Authorization = `Bearer ${this._apiKey}`;
    if (body !== undefined) all["Content-Type"] = "application/json";
    let response;
    try {
      response = await this._fetch(this._url(path, query), {
        method,
        headers: all,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      });
    } catch (error) {
      if (error?.name === "AbortError") throw error;
      throw new SkillwireError("NETWORK_ERROR", `${method} ${path}: ${error?.message ?? error}`);
    }
    const requestId = response.headers.get("X-Request-ID");
    let payload = null;
    try {
      payload = await response.json();
    } catch {
      payload = null;
    }
    if (response.ok) return payload;
    const retry = Number(response.headers.get("Retry-After"));
    const extra = {
      status: response.status,
      requestId: payload?.error?.request_id ?? requestId,
      retryAfter: Number.isFinite(retry) && retry > 0 ? retry : null,
    };
    if (payload?.error) throw SkillwireError.fromBody(payload.error, extra);
    const code = CODE_BY_STATUS[response.status] ?? "INTERNAL_ERROR";
    throw new SkillwireError(code, `${method} ${path}: HTTP ${response.status}`, extra);
  }

  _report(error) {
    safely(this._onError, error);
  }
}

/**
 * The one multiplexed WebSocket of a client: connects (ticket or `auth` op), sends ops and
 * matches replies by `ref`, routes events to subscriptions, and reconnects and resumes.
 */
class WsLink {
  /** @param {SkillwireClient} client */
  constructor(client) {
    this.client = client;
    /** @type {WebSocket|null} */
    this.socket = null;
    this.ready = false;
    this.connecting = false;
    this.opened = false; // this socket reached `open`
    this.failures = 0; // consecutive connections that failed
    this.authFailures = 0;
    this.timer = null;
    this.idle = null;
    this.stopped = false;
    this.nextRef = 0;
    /** @type {Map<string, Set<Subscription>>} */
    this.subs = new Map();
    /** @type {Map<string, {resolve: Function, reject: Function, onReply?: Function}>} */
    this.pending = new Map();
    /** @type {{message: Object, entry: Object}[]} ops waiting for the connection */
    this.queue = [];
  }

  /**
   * Send an op and wait for its reply (resolves with it; an `error` reply rejects).
   * `onReply` runs synchronously when the reply is read, before any later message.
   */
  request(message, onReply) {
    return new Promise((resolve, reject) => {
      const entry = { resolve, reject, onReply };
      if (this.ready) this.send(message, entry);
      else {
        this.queue.push({ message, entry });
        this.ensure();
      }
    });
  }

  /** Route a subscription's events here; `subscribe` asks the server to follow the task. */
  adopt(sub, { subscribe = false } = {}) {
    sub.transport = "ws";
    sub._feed = { close: (reason) => this.release(sub, reason), drop: () => this.drop() };
    let group = this.subs.get(sub.taskId);
    if (!group) this.subs.set(sub.taskId, (group = new Set()));
    group.add(sub);
    if (this.ready) {
      sub._status("open");
      if (subscribe) this.follow(sub.taskId);
    } else {
      sub._status("connecting");
      this.ensure();
    }
  }

  release(sub, reason) {
    const group = this.subs.get(sub.taskId);
    if (!group?.delete(sub) || group.size) return;
    this.subs.delete(sub.taskId);
    if (reason !== "finished" && this.ready) {
      this.send({ op: "unsubscribe", task_id: sub.taskId }, null);
    }
  }

  /** (Re)subscribe to a task after the lowest seq any local subscription has seen. */
  follow(taskId) {
    const group = this.subs.get(taskId);
    if (!group?.size) return;
    const subs = [...group];
    const after = Math.min(...subs.map((s) => s._last));
    const snapshot = subs.some((s) => s._snapshot && s._delivered === 0);
    const fail = (error) => {
      for (const sub of subs) sub._fail(error);
    };
    // internal: a lost connection resubscribes rather than failing the subscriptions
    const entry = { resolve: () => {}, reject: fail, internal: true };
    this.send({ op: "subscribe", task_id: taskId, after, snapshot }, entry);
  }

  send(message, entry) {
    if (entry) {
      message.ref = `r${++this.nextRef}`;
      this.pending.set(message.ref, entry);
    }
    this.socket.send(JSON.stringify(message));
  }

  ensure() {
    if (this.socket || this.connecting || this.timer || this.stopped) return;
    this.connect();
  }

  async connect() {
    const client = this.client;
    this.connecting = true;
    let query;
    if (!client._apiKey) {
      try {
        query = { ticket: await client.ticket() };
      } catch (error) {
        this.connecting = false;
        if (error.temporary) this.retry(0);
        else this.fatal(error);
        return;
      }
    }
    this.connecting = false;
    if (this.stopped) return;
    let socket;
    try {
      socket = new client._WebSocket(client._wsUrl("/api/v1/ws", query), SUBPROTOCOL);
    } catch (error) {
      this.lost(null, { code: 1006, reason: String(error?.message ?? error) });
      return;
    }
    this.socket = socket;
    this.opened = false;
    socket.onopen = () => {
      if (socket !== this.socket) return;
      this.opened = true;
      client._works.add("ws");
      this.touch();
      if (query) this.established();
      else {
        const entry = {
          resolve: () => this.established(),
          reject: (error) => this.fatal(error),
          internal: true,
        };
        this.send({ op: "auth", token: client._apiKey }, entry);
      }
    };
    socket.onmessage = (message) => {
      if (socket === this.socket) this.receive(message.data);
    };
    socket.onclose = (event) => {
      if (socket === this.socket) this.lost(socket, event);
    };
    socket.onerror = () => {}; // a close event follows
  }

  /** Authenticated: resume every subscription and send what waited for the connection. */
  established() {
    this.ready = true;
    this.failures = 0;
    this.authFailures = 0;
    for (const taskId of this.subs.keys()) this.follow(taskId);
    for (const group of this.subs.values()) for (const sub of group) sub._status("open");
    const queued = this.queue.splice(0);
    for (const { message, entry } of queued) this.send(message, entry);
  }

  /** A server frame: one or more JSON messages, one per line. */
  receive(data) {
    this.touch();
    if (typeof data !== "string") return;
    for (const line of data.split("\n")) {
      if (!line.trim()) continue;
      let message;
      try {
        message = JSON.parse(line);
      } catch {
        this.client._report(new SkillwireError("BAD_REQUEST", "unreadable server message"));
        continue;
      }
      this.dispatch(message);
    }
  }

  dispatch(message) {
    if (message.op === "event") {
      const group = this.subs.get(message.event?.task_id);
      if (group) for (const sub of [...group]) sub._deliver(message.event);
      return;
    }
    if (message.op === "heartbeat") return;
    if (message.op === "ended") {
      // The task finished at or before the seq subscribed after: its terminal event will
      // not come, so the subscriptions past it end here.
      const group = this.subs.get(message.task_id);
      if (group) {
        for (const sub of [...group]) {
          if (sub._last >= message.last_seq) sub._finishQuietly();
        }
      }
      return;
    }
    const entry = message.ref != null ? this.pending.get(message.ref) : undefined;
    if (entry) {
      this.pending.delete(message.ref);
      if (message.op === "error") entry.reject(SkillwireError.fromBody(message.error ?? {}));
      else {
        entry.onReply?.(message);
        entry.resolve(message);
      }
      return;
    }
    if (message.op === "error") {
      const error = SkillwireError.fromBody(message.error ?? {});
      const group = this.subs.get(error.details?.task_id);
      if (group && !error.temporary) for (const sub of [...group]) sub._fail(error);
      else this.client._report(error);
    }
  }

  /** The connection closed or failed. @param {WebSocket|null} socket */
  lost(socket, { code, reason }) {
    if (socket) {
      socket.onopen = socket.onmessage = socket.onclose = null;
    }
    const wasOpen = this.opened;
    this.socket = null;
    this.ready = false;
    this.opened = false;
    clearTimeout(this.idle);
    const lostError = new SkillwireError(
      "CONNECTION_LOST",
      `WebSocket closed (${code}${reason ? `: ${reason}` : ""})`,
      { closeCode: code },
    );
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const entry of pending) if (!entry.internal) entry.reject(lostError);
    if (this.stopped) return;
    if (code === CLOSE_FORBIDDEN) {
      this.fatal(new SkillwireError("FORBIDDEN", reason || "forbidden", { closeCode: code }));
      return;
    }
    if (code === CLOSE_UNAUTHENTICATED) {
      // A ticket may have expired on the way: one more try with a fresh one.
      this.authFailures += 1;
      if (this.client._apiKey || this.authFailures > 1) {
        const message = reason || "authentication failed";
        this.fatal(new SkillwireError("UNAUTHORIZED", message, { closeCode: code }));
        return;
      }
    }
    if (!wasOpen) {
      this.failures += 1;
      if (this.failures >= this.client._connectAttempts && this.giveUp()) return;
    }
    this.retry(code);
  }

  /** WebSocket never connected: hand every subscription and queued call to the next one. */
  giveUp() {
    const subs = [...this.subs.values()].flatMap((group) => [...group]);
    if (!this.client._giveUp("ws", [])) return false;
    this.subs.clear();
    const error = new SkillwireError("TRANSPORT_UNAVAILABLE", "WebSocket is unavailable");
    for (const { entry } of this.queue.splice(0)) entry.reject(error);
    for (const sub of subs) if (!sub.closed) this.client._attach(sub);
    return true;
  }

  /** Reconnect after a jittered delay, if anything still needs the connection. */
  retry(code) {
    const hasWork = this.subs.size > 0 || this.queue.length > 0;
    if (!hasWork || this.stopped) return;
    const delay = this.client._delay(Math.max(this.failures, this.authFailures));
    const status = { delay, attempt: this.failures, code };
    for (const group of this.subs.values()) {
      for (const sub of group) sub._status("reconnecting", status);
    }
    this.timer = setTimeout(() => {
      this.timer = null;
      this.ensure();
    }, delay);
  }

  /** Give up: authentication failed, or the key may not do this. */
  fatal(error) {
    const subs = [...this.subs.values()].flatMap((group) => [...group]);
    this.subs.clear();
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const { entry } of this.queue.splice(0)) entry.reject(error);
    for (const entry of pending) if (!entry.internal) entry.reject(error);
    for (const sub of subs) sub._fail(error);
    this.failures = 0;
    this.authFailures = 0;
    if (this.socket) this.abandon(1000, "giving up");
  }

  /** Nothing heard for idleTimeout (heartbeats included): the connection is dead. */
  touch() {
    clearTimeout(this.idle);
    this.idle = setTimeout(() => this.drop("idle"), this.client._idleTimeout);
  }

  /** Close the socket and handle it as a drop at once, without waiting for the handshake. */
  drop(reason = "dropped") {
    if (this.socket) this.abandon(CLOSE_DROPPED, reason);
  }

  abandon(code, reason) {
    const socket = this.socket;
    try {
      socket.close(code === 1000 ? 1000 : CLOSE_DROPPED, reason);
    } catch {
      // already closing
    }
    this.lost(socket, { code, reason });
  }

  shutdown() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.idle);
    this.timer = null;
    if (this.socket) this.abandon(1000, "client closed");
  }
}

/** One subscription over EventSource; a fresh ticket for every (re)connection. */
class SseFeed {
  /** @param {SkillwireClient} client @param {Subscription} sub */
  constructor(client, sub) {
    this.client = client;
    this.sub = sub;
    /** @type {EventSource|null} */
    this.source = null;
    this.timer = null;
    this.closed = false;
    this.attempt = 0;
    this.failures = 0;
    this.open();
  }

  async open() {
    const { client, sub } = this;
    sub._status("connecting");
    let ticket;
    try {
      ticket = await client.ticket();
    } catch (error) {
      if (error.temporary) this.retry();
      else sub._fail(error);
      return;
    }
    if (this.closed) return;
    const query = { ticket, after: sub._last };
    if (sub._snapshot && sub._delivered === 0) query.snapshot = "true";
    const url = client._url(`/api/v1/tasks/${enc(sub.taskId)}/events`, query);
    const source = new client._EventSource(url);
    this.source = source;
    let opened = false;
    const onMessage = (message) => {
      if (source !== this.source) return;
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return;
      }
      sub._deliver(event); // a terminal event closes this feed
    };
    for (const type of EVENT_TYPES) source.addEventListener(type, onMessage);
    source.onmessage = onMessage;
    source.onopen = () => {
      if (source !== this.source) return;
      opened = true;
      client._works.add("sse");
      this.attempt = 0;
      this.failures = 0;
      sub._status("open");
    };
    // EventSource would reconnect by itself with the same, now used, ticket: never let it.
    source.onerror = () => {
      if (source !== this.source) return;
      this.stop();
      if (!this.closed) this.lost(opened);
    };
  }

  async lost(opened) {
    if (opened) {
      // A stream that ended without the terminal event may have been resumed past the end
      // of the task: the server ends such a stream when the task finishes.
      await this.client._endIfPast(this.sub);
      this.retry();
      return;
    }
    this.failures += 1;
    // EventSource hides the status: ask REST whether the task itself is the problem.
    if (this.client._apiKey) {
      try {
        await this.client.task(this.sub.taskId);
      } catch (error) {
        if (!error.temporary) {
          this.sub._fail(error);
          return;
        }
      }
    }
    if (this.closed) return;
    if (this.failures >= this.client._connectAttempts) {
      if (this.client._giveUp("sse", [this.sub])) return;
    }
    this.retry();
  }

  retry() {
    if (this.closed) return;
    const delay = this.client._delay(this.attempt++);
    this.sub._status("reconnecting", { delay, attempt: this.attempt });
    this.timer = setTimeout(() => {
      this.timer = null;
      if (!this.closed) this.open();
    }, delay);
  }

  stop() {
    this.source?.close();
    this.source = null;
  }

  /** Test hook: the connection drops as on a network failure. */
  drop() {
    if (!this.source || this.closed) return;
    this.stop();
    this.retry();
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    this.stop();
  }
}

/**
 * One subscription by long polling `GET /api/v1/tasks/{id}?wait=N`. Polling sees Tasks, not
 * events: a task that moved on arrives as one `task.snapshot` event (seq = its last_seq), and
 * a finished one as its terminal event (`task.<status>` carrying the final Task), unless a
 * snapshot was asked for first. The first poll answers at once; the next ones wait.
 */
class PollFeed {
  /** @param {SkillwireClient} client @param {Subscription} sub */
  constructor(client, sub) {
    this.client = client;
    this.sub = sub;
    this.closed = false;
    this.controller = null;
    this.timer = null;
    this.wake = null;
    this.loop();
  }

  async loop() {
    const { client, sub } = this;
    let wait = 0;
    let attempt = 0;
    sub._status("connecting");
    while (!this.closed) {
      this.controller = new AbortController();
      let task;
      try {
        task = await client.task(sub.taskId, { wait, signal: this.controller.signal });
      } catch (error) {
        if (this.closed) return;
        if (error?.name !== "AbortError" && !error.temporary) {
          sub._fail(error);
          return;
        }
        const delay = error?.name === "AbortError" ? 0 : client._delay(attempt++);
        if (delay) sub._status("reconnecting", { delay, attempt });
        await new Promise((resolve) => {
          this.wake = resolve;
          this.timer = setTimeout(resolve, delay);
        });
        continue;
      }
      if (this.closed) return;
      if (attempt || wait === 0) sub._status("open");
      attempt = 0;
      client._works.add("poll");
      const finished = TERMINAL_STATUSES.has(task.status);
      const asked = sub._snapshot && sub._delivered === 0;
      if (task.last_seq > sub._last || (task.last_seq === sub._last && asked)) {
        const terminal = finished && !asked;
        sub._deliver({
          task_id: task.task_id,
          seq: task.last_seq,
          type: terminal ? `task.${task.status}` : "task.snapshot",
          time: (terminal ? task.finished_at : null) ?? task.updated_at,
          data: task,
        });
      }
      if (finished) sub._finishQuietly();
      wait = client._pollWait;
    }
  }

  /** Test hook: abort the poll in flight; the next one starts at once. */
  drop() {
    this.controller?.abort();
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    this.wake?.();
    this.controller?.abort();
  }
}

function enc(segment) {
  return encodeURIComponent(segment);
}

/** Call a user callback; its exceptions are reported, never break the transport. */
function safely(callback, value) {
  if (typeof callback !== "function") return;
  try {
    callback(value);
  } catch (error) {
    if (typeof globalThis.reportError === "function") globalThis.reportError(error);
    else console.error(error);
  }
}
