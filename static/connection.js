// One WebSocket that keeps itself open: reconnects with capped exponential backoff and jitter.
// Its events are typed below (ConnectionEvents); `on` listens to them with their types.

/** Above this the wait between attempts never grows: a person should not wait minutes after a blip. */
export const MAX_BACKOFF_MS = 30_000;
/** A connection that lived this long counts as healthy: the next reconnect starts from the base delay. */
const HEALTHY_MS = 2_000;
/** An attempt stuck in CONNECTING this long is abandoned (a black-holed network never fails fast). */
const CONNECT_TIMEOUT_MS = 10_000;

/**
 * @typedef {"idle" | "connecting" | "connected" | "reconnecting"} ConnectionState
 *
 * @typedef {object} LastClose how the last socket that had opened ended
 * @property {number} code
 * @property {string} reason
 * @property {boolean} wasClean
 * @property {Date} at
 *
 * @typedef {object} StateDetail detail of the `state` event
 * @property {ConnectionState} state
 * @property {number} attempt attempts made since the last healthy connection (0 during the first)
 * @property {LastClose | null} lastClose
 * @property {number} [delayMs] when reconnecting: the wait before the next attempt
 *
 * @typedef {object} CloseDetail detail of the `close` event: one per socket, failed attempts too
 * @property {number} code
 * @property {string} reason
 * @property {boolean} wasClean
 * @property {boolean} everOpened false for an attempt that never connected
 *
 * @typedef {object} MessageDetail detail of the `message` event
 * @property {string | ArrayBuffer} data a text frame, or a binary one
 *
 * @typedef {object} ConnectionEvents what `Connection.on` listens to
 * @property {CustomEvent<StateDetail>} state
 * @property {Event} open the socket is open (flush queued messages here)
 * @property {CustomEvent<CloseDetail>} close
 * @property {CustomEvent<MessageDetail>} message
 */

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
    /** @type {WebSocket | null} */
    this.ws = null;
    this.timer = 0;
    this.connectTimer = 0;
    this.openedAt = 0;
    /** @type {LastClose | null} */
    this.lastClose = null;
    /** @type {ConnectionState} */
    this.state = "idle";
  }

  get connected() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  /**
   * addEventListener with the event's type known to the listener.
   * @template {keyof ConnectionEvents} K
   * @param {K} type
   * @param {(event: ConnectionEvents[K]) => void} listener
   */
  on(type, listener) {
    this.addEventListener(type, /** @type {EventListener} */ (listener));
  }

  start() {
    addEventListener("online", () => {
      if (this.state === "reconnecting") this.reconnectNow();
    });
    this.#connect();
  }

  /**
   * Sends a text frame; false when there is no open socket (the caller queues the message).
   * @param {string} text
   */
  send(text) {
    if (this.ws === null || this.ws.readyState !== WebSocket.OPEN) return false;
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

  /**
   * Dispatches an event whose type and shape ConnectionEvents fixes.
   * @template {keyof ConnectionEvents} K
   * @param {K} _type
   * @param {ConnectionEvents[K]} event
   */
  #emit(_type, event) {
    this.dispatchEvent(event);
  }

  /**
   * @param {ConnectionState} state
   * @param {{ delayMs?: number }} extra
   */
  #setState(state, extra = {}) {
    this.state = state;
    /** @type {StateDetail} */
    const detail = { state, attempt: this.attempt, lastClose: this.lastClose, ...extra };
    this.#emit("state", new CustomEvent("state", { detail }));
  }

  #connect() {
    this.#setState("connecting");
    /** @type {WebSocket} */
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (err) {
      // Only a malformed URL throws here; retrying cannot fix it, but keep the loop uniform.
      this.#onClose(null, { code: 1006, reason: err instanceof Error ? err.message : String(err), wasClean: false });
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
      this.#emit("open", new Event("open"));
    });
    ws.addEventListener("message", (e) => {
      this.#emit("message", new CustomEvent("message", { detail: { data: e.data } }));
    });
    ws.addEventListener("close", (e) => this.#onClose(ws, e));
  }

  /**
   * @param {WebSocket | null} ws null when the constructor threw
   * @param {{ code: number, reason: string, wasClean: boolean }} close
   */
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
    this.#emit("close", new CustomEvent("close", { detail: { code, reason, wasClean, everOpened } }));

    // "Equal jitter": wait between half and all of the ceiling, so a fleet of pages that lost the
    // same gateway does not come back in lockstep, yet nobody retries at once in a tight loop.
    const ceiling = this.backoffCeiling();
    const delayMs = Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
    this.attempt += 1;
    this.#setState("reconnecting", { delayMs });
    this.timer = setTimeout(() => this.#connect(), delayMs);
  }
}

/**
 * A short human description of a WebSocket close code.
 * @param {number} code
 */
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
