// skillwire-worker.js: serve skills from Node as a remote worker of a skillwire gateway.
//
// An ES module with no dependencies: it uses the global WebSocket of Node 22 and later
// (on Node 20 run node with --experimental-websocket). That WebSocket, like a browser's,
// sets no headers, so the worker authenticates with the `auth` op, then says `hello`.
//
//   import { Worker } from "./skillwire-worker.js";
//   const worker = new Worker("http://127.0.0.1:8000", { key: process.env.SKILLWIRE_KEY });
//   worker.skill("text", "reverse", { inputSchema: { type: "object" } }, async (input, ctx) => {
//     await ctx.progress(0.5, "half way");
//     return { type: "text", text: [...input.text].reverse().join("") };
//   });
//   await worker.run();
//
// A handler gets the request's input and a context: ctx.progress(fraction, message),
// await ctx.output(item) (returns its number n), await ctx.append(n, field, text),
// ctx.stream(item, field) (an object with append(text)), ctx.setResult(data), and
// ctx.signal, an AbortSignal aborted when the gateway cancels the work. Returning a value
// other than undefined emits it as one output; throwing fails the request (an error's
// `code` and `details` are kept, else the code is SKILL_ERROR). A lost connection is
// opened again with backoff; the gateway runs the unfinished work elsewhere.

const SUBPROTOCOL = "skillwire.worker.v1";

export class SkillFailure extends Error {
  constructor(message, code = "SKILL_ERROR", details = {}) {
    super(message);
    this.code = code;
    this.details = details;
  }
}

class WorkContext {
  constructor(send, work) {
    this._send = send;
    this._outputs = 0;
    this._controller = new AbortController();
    this.result = {};
    this.workId = work.work_id;
    this.taskId = work.task_id;
    this.index = work.index;
    this.app = work.app;
    this.skill = work.skill;
    this.attempt = work.attempt ?? 1;
    this.signal = this._controller.signal;
  }

  async progress(fraction, message = "") {
    const progress = Math.min(Math.max(Number(fraction) || 0, 0), 1);
    this._send({ op: "progress", work_id: this.workId, progress, message });
  }

  async output(item) {
    this._send({ op: "output", work_id: this.workId, output: item });
    return this._outputs++;
  }

  async append(output, field, text) {
    if (!(output >= 0 && output < this._outputs)) {
      throw new RangeError(`output ${output} was not emitted (${this._outputs} so far)`);
    }
    if (text) this._send({ op: "delta", work_id: this.workId, output, field, append: text });
  }

  async stream(item, field = "text") {
    const n = await this.output(item);
    return { number: n, append: (text) => this.append(n, field, text) };
  }

  setResult(data) {
    this.result = data;
  }
}

export class Worker {
  // baseUrl: the gateway (http://host:port); options: key, name, concurrency, backoff
  // ({initial, maximum} seconds), wsUrl (the worker endpoint's URL, overriding baseUrl's).
  constructor(baseUrl, options = {}) {
    const base = baseUrl.replace(/\/+$/, "").replace(/^http/, "ws");
    this.url = options.wsUrl ?? `${base}/api/v1/workers/ws`;
    this.key = options.key;
    this.name = options.name ?? "";
    this.concurrency = options.concurrency ?? 4;
    this.backoff = { initial: 0.2, maximum: 10, ...(options.backoff ?? {}) };
    this.skills = new Map();
    this.workerId = null;
    this.refused = new Map(); // "app/skill" -> the gateway's error
    this.onReady = null; // called with the worker id after each welcome
    this._running = new Map();
    this._stopping = false;
    this._socket = null;
  }

  // Serve `app/skill`. options: description, inputSchema (JSON Schema), mode ("quick" or
  // "long"), maxRequests, timeout (seconds).
  skill(app, skill, options, handler) {
    this.skills.set(`${app}/${skill}`, {
      declaration: {
        app,
        skill,
        description: options.description ?? "",
        input_schema: options.inputSchema ?? { type: "object" },
        mode: options.mode ?? "quick",
        max_requests: options.maxRequests ?? null,
        timeout: options.timeout ?? null,
      },
      handler,
    });
    return this;
  }

  // Serve until stop(); rejects when the gateway refuses the key (close 4401 or 4403).
  async run() {
    let attempt = 0;
    while (!this._stopping) {
      const code = await this._serveOnce();
      if (code === 4401 || code === 4403) {
        throw new SkillFailure(`the gateway refused this worker (close ${code})`, "UNAUTHORIZED");
      }
      if (this._stopping) return;
      if (this.workerId !== null) attempt = 0;
      const delay = Math.min(this.backoff.maximum, this.backoff.initial * 2 ** attempt);
      await new Promise((resolve) => setTimeout(resolve, Math.random() * delay * 1000));
      attempt += 1;
    }
  }

  stop() {
    this._stopping = true;
    this._socket?.close(1000);
  }

  _serveOnce() {
    return new Promise((resolve) => {
      let socket;
      try {
        socket = new WebSocket(this.url, [SUBPROTOCOL]);
      } catch {
        resolve(null);
        return;
      }
      this._socket = socket;
      this.workerId = null;
      const send = (message) => {
        if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
      };
      socket.onopen = () => send({ op: "auth", ref: "auth", token: this.key ?? "" });
      socket.onmessage = (event) => {
        for (const line of String(event.data).split("\n")) {
          if (line.trim()) this._handle(JSON.parse(line), send);
        }
      };
      let ended = false;
      const end = (code) => {
        if (ended) return;
        ended = true;
        for (const ctx of this._running.values()) ctx._controller.abort();
        this._running.clear();
        this._socket = null;
        resolve(code);
      };
      socket.onclose = (event) => end(event.code);
      // Node 20's WebSocket reports a refused connection (a gateway restarting) with an error
      // and no close event: without this, run() would wait forever and Node would exit.
      socket.onerror = () => {
        if (socket.readyState !== WebSocket.OPEN) end(null);
      };
    });
  }

  _handle(message, send) {
    switch (message.op) {
      case "authenticated":
        send({
          op: "hello",
          ref: "hello",
          name: this.name,
          concurrency: this.concurrency,
          skills: [...this.skills.values()].map((s) => s.declaration),
        });
        break;
      case "welcome":
        this.workerId = message.worker_id;
        this.onReady?.(this.workerId);
        break;
      case "work":
        this._work(message, send);
        break;
      case "cancel":
        this._running.get(message.work_id)?._controller.abort();
        break;
      case "heartbeat":
        send({ op: "ping" }); // a sign of life: the gateway drops silent workers
        break;
      case "error":
        if (message.error?.details?.skill) this.refused.set(message.error.details.skill, message.error);
        break;
      default: // ops this worker does not know: skip them (the contract grows)
    }
  }

  async _work(work, send) {
    const ctx = new WorkContext((m) => !ctx.signal.aborted && send(m), work);
    this._running.set(work.work_id, ctx);
    try {
      const skill = this.skills.get(`${work.app}/${work.skill}`);
      if (!skill) throw new SkillFailure(`this worker does not serve ${work.app}/${work.skill}`);
      const value = await skill.handler(work.input, ctx);
      if (value !== undefined) await ctx.output(value);
      ctx._send({ op: "completed", work_id: ctx.workId, data: ctx.result });
    } catch (error) {
      ctx._send({
        op: "failed",
        work_id: ctx.workId,
        error: {
          code: typeof error?.code === "string" ? error.code : "SKILL_ERROR",
          message: String(error?.message ?? error),
          details: error?.details ?? {},
        },
      });
    } finally {
      this._running.delete(work.work_id);
    }
  }
}
