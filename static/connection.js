// One WebSocket that keeps itself open: reconnects with capped exponential backoff and jitter.
//
// Events (all `CustomEvent`s on the instance):
// - `state`   detail { state: "connecting" | "connected" | "reconnecting", attempt, delayMs, lastClose }
// - `open`    the socket is open (flush queued messages here)
// - `close`   detail { code, reason, wasClean, everOpened }: one per socket, also for failed attempts
// - `message` detail { data }: string, or ArrayBuffer for binary frames

/** Above this the wait between attempts never grows: a person should not wait minutes after a blip. */
export const MAX_BACKOFF_MS = 30_000;
/** A connection that lived this long counts as healthy: the next reconnect starts from the base delay. */
const HEALTHY_MS = 2_000;
/** An attempt stuck in CONNECTING this long is abandoned (a black-holed network never fails fast). */
const CONNECT_TIMEOUT_MS = 10_000;

export class Connection extends EventTarget {
  /**
   * @param {string} url ws: or wss: URL
   * @param {{ baseMs?: number, maxMs?: number }} backoff
   */
  constructor(url, { baseMs = 500, maxMs = MAX_BACKOFF_MS } = {}) {
    super();
    this.url = url;
    this.baseMs = baseMs;
    this.maxMs = Math.min(maxMs, MAX_BACKOFF_MS);
    this.attempt = 0;
    this.ws = null;
    this.timer = 0;
    this.connectTimer = 0;
    this.openedAt = 0;
    this.lastClose = null;
    this.state = "idle";
  }

  get connected() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  start() {
    addEventListener("online", () => {
      if (this.state === "reconnecting") this.reconnectNow();
    });
    this.#connect();
  }

  /** Sends a text frame; false when there is no open socket (the caller queues the message). */
  send(text) {
    if (!this.connected) return false;
    this.ws.send(text);
    return true;
  }

  /** Skips the rest of the current wait. */
  reconnectNow() {
    if (this.state !== "reconnecting") return;
    clearTimeout(this.timer);
    this.#connect();
  }

  /** Full delay for the current attempt, before jitter: base * 2^attempt, capped. */
  backoffCeiling() {
    return Math.min(this.maxMs, this.baseMs * 2 ** Math.min(this.attempt, 16));
  }

  #setState(state, extra = {}) {
    this.state = state;
    const detail = { state, attempt: this.attempt, lastClose: this.lastClose, ...extra };
    this.dispatchEvent(new CustomEvent("state", { detail }));
  }

  #connect() {
    this.#setState("connecting");
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (err) {
      // Only a malformed URL throws here; retrying cannot fix it, but keep the loop uniform.
      this.#onClose(null, { code: 1006, reason: String(err.message || err), wasClean: false });
      return;
    }
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    this.connectTimer = setTimeout(() => {
      if (ws.readyState === WebSocket.CONNECTING) ws.close();
    }, CONNECT_TIMEOUT_MS);
    ws.addEventListener("open", () => {
      clearTimeout(this.connectTimer);
      this.openedAt = performance.now();
      this.#setState("connected");
      this.dispatchEvent(new Event("open"));
    });
    ws.addEventListener("message", (e) => {
      this.dispatchEvent(new CustomEvent("message", { detail: { data: e.data } }));
    });
    ws.addEventListener("close", (e) => this.#onClose(ws, e));
  }

  #onClose(ws, { code, reason, wasClean }) {
    clearTimeout(this.connectTimer);
    if (ws !== null && ws !== this.ws) return;
    const everOpened = ws !== null && this.openedAt > 0 && this.state === "connected";
    this.ws = null;
    if (everOpened) {
      this.lastClose = { code, reason, wasClean, at: new Date() };
      if (performance.now() - this.openedAt >= HEALTHY_MS) this.attempt = 0;
    }
    this.openedAt = 0;
    this.dispatchEvent(new CustomEvent("close", { detail: { code, reason, wasClean, everOpened } }));

    // "Equal jitter": wait between half and all of the ceiling, so a fleet of pages that lost the
    // same gateway does not come back in lockstep, yet nobody retries at once in a tight loop.
    const ceiling = this.backoffCeiling();
    const delayMs = Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
    this.attempt += 1;
    this.#setState("reconnecting", { delayMs, until: performance.now() + delayMs });
    this.timer = setTimeout(() => this.#connect(), delayMs);
  }
}

/** A short human description of a WebSocket close code. */
export function describeClose(code) {
  switch (code) {
    case 1000: return "normal closure";
    case 1001: return "going away";
    case 1005: return "no status";
    case 1006: return "connection lost";
    case 1008: return "policy violation";
    case 1009: return "message too big";
    case 1011: return "server error";
    case 1012: return "service restart";
    case 1013: return "try again later";
    default: return "closed";
  }
}
