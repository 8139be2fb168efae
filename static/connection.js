// One WebSocket that keeps itself open: after every close it waits, then tries again, for as long as
// the page is open.
//
// The wait (see `reconnectDelay`) is what keeps a fleet of pages from hammering a gateway that just
// came back, all in the same instant. Everything the class touches outside itself (the WebSocket
// constructor, the clock and timers, the random source) can be injected, so node unit-tests it
// without a browser (page/tests/connection.test.mjs); nothing runs at import time.

/** Above this the wait between attempts never grows: a person should not wait minutes after a blip. */
export const MAX_BACKOFF_MS = 30_000;
/**
 * After a Close 1001 the wait is uniform over this window. It is the gateway's default
 * `--drain-spread` (5 s), over which a draining gateway spreads its 1001s: waiting a random point of
 * the same window keeps the clients of a drained replica spread out on their way to the others, even
 * when something in front of the gateway closed them all in the same instant.
 */
export const DRAIN_WINDOW_MS = 5_000;
/** A connection that lived this long counts as healthy: the next reconnect starts from the base delay. */
export const HEALTHY_MS = 2_000;
/** An attempt stuck in CONNECTING this long is abandoned (a black-holed network never fails fast). */
export const CONNECT_TIMEOUT_MS = 10_000;

// readyState values, fixed by the WebSocket standard (an injected class need not carry the statics).
const CONNECTING = 0;
const OPEN = 1;

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
 * @typedef {object} ConnectionEvents what `Connection.on` can listen to
 * @property {CustomEvent<StateDetail>} state
 * @property {Event} open the socket is open (flush queued messages here)
 * @property {CustomEvent<CloseDetail>} close
 * @property {CustomEvent<MessageDetail>} message
 *
 * @typedef {object} Clock
 * @property {() => number} now monotonic milliseconds, as performance.now()
 * @property {(fn: () => void, ms: number) => unknown} setTimeout
 * @property {(handle: unknown) => void} clearTimeout
 *
 * @typedef {object} ConnectionOptions
 * @property {number} [baseMs] ceiling of the first reconnect delay (default 500)
 * @property {number} [maxMs] ceiling the delay grows to (default and upper limit MAX_BACKOFF_MS)
 * @property {number} [drainWindowMs] window of the wait after a 1001 (default DRAIN_WINDOW_MS, at most
 *   MAX_BACKOFF_MS)
 * @property {() => number} [random] uniform in [0, 1), as Math.random
 * @property {Clock} [clock]
 * @property {new (url: string) => WebSocket} [WebSocket]
 * @property {EventTarget | null} [network] where the browser fires `online` (window)
 */

/**
 * The ceiling of the wait before attempt `attempt + 1` of the backoff: base * 2^attempt, capped.
 * @param {number} attempt
 * @param {number} baseMs
 * @param {number} maxMs
 */
export function backoffCeiling(attempt, baseMs, maxMs) {
  return Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 16));
}

/**
 * How long to wait before reconnecting, in ms.
 *
 * After a 1001 ("going away": a drain, a restart) the server left on purpose, often closing many
 * clients at once: "full jitter", uniform in [0, drainWindowMs], spreads their return over the whole
 * window (the short wait after a blip would bring them all back in one burst). Any other close is a
 * failure that may repeat: capped exponential backoff with "equal jitter", between half and all of
 * the ceiling, so nobody retries in a tight loop and a fleet that lost the same gateway still does
 * not come back in lockstep.
 *
 * @param {{ attempt: number, baseMs: number, maxMs: number, goingAway: boolean, drainWindowMs: number }} p
 * @param {() => number} random uniform in [0, 1)
 */
export function reconnectDelay({ attempt, baseMs, maxMs, goingAway, drainWindowMs }, random) {
  if (goingAway) return Math.round(random() * drainWindowMs);
  const ceiling = backoffCeiling(attempt, baseMs, maxMs);
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/** @type {Clock} */
const realClock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(/** @type {ReturnType<typeof setTimeout>} */ (handle)),
};

export class Connection extends EventTarget {
  /**
   * @param {string} url ws: or wss: URL
   * @param {ConnectionOptions} options
   */
  constructor(url, {
    baseMs = 500,
    maxMs = MAX_BACKOFF_MS,
    drainWindowMs = DRAIN_WINDOW_MS,
    random = Math.random,
    clock = realClock,
    WebSocket = globalThis.WebSocket,
    network = typeof window === "undefined" ? null : window,
  } = {}) {
    super();
    this.url = url;
    this.baseMs = baseMs;
    this.maxMs = Math.min(maxMs, MAX_BACKOFF_MS);
    this.drainWindowMs = Math.min(Math.max(0, drainWindowMs), MAX_BACKOFF_MS);
    this.random = random;
    this.clock = clock;
    this.WebSocket = WebSocket;
    this.network = network;
    this.attempt = 0;
    /** @type {WebSocket | null} */
    this.ws = null;
    /** @type {unknown} */
    this.timer = undefined;
    /** @type {unknown} */
    this.connectTimer = undefined;
    this.openedAt = 0;
    /** @type {LastClose | null} */
    this.lastClose = null;
    /** @type {ConnectionState} */
    this.state = "idle";
  }

  get connected() {
    return this.ws !== null && this.ws.readyState === OPEN;
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
    // Back online after a network change: the wait has no more reason to run its course.
    this.network?.addEventListener("online", () => this.reconnectNow());
    this.#connect();
  }

  /**
   * Sends a text frame; false when there is no open socket (the caller queues the message).
   * @param {string} text
   */
  send(text) {
    if (this.ws === null || this.ws.readyState !== OPEN) return false;
    this.ws.send(text);
    return true;
  }

  /**
   * Moves to another URL at once: the socket in use, if any, is closed with 1000 and nothing reconnects
   * to it; the new URL starts from a fresh backoff (the old one's failures say nothing about it). The
   * old socket's late frames and close are not reported as this connection's.
   * @param {string} url ws: or wss: URL
   * @returns {Promise<CloseDetail | null>} how the old socket ended, once it has; null if there was none
   */
  switchTo(url) {
    this.url = url;
    if (this.state === "idle") return Promise.resolve(null);
    const old = this.ws;
    this.clock.clearTimeout(this.timer);
    this.clock.clearTimeout(this.connectTimer);
    this.ws = null;
    this.attempt = 0;
    this.lastClose = null;
    this.openedAt = 0;
    /** @type {Promise<CloseDetail | null>} */
    let ended = Promise.resolve(null);
    if (old !== null) {
      const everOpened = old.readyState === OPEN;
      ended = new Promise((done) => {
        old.addEventListener("close", (e) => done({ code: e.code, reason: e.reason, wasClean: e.wasClean, everOpened }), {
          once: true,
        });
      });
      // 1000: the page is done with this socket; nothing went wrong on either side.
      old.close(1000, "switching app");
    }
    this.#connect();
    return ended;
  }

  /** Skips the rest of the current wait. */
  reconnectNow() {
    if (this.state !== "reconnecting") return;
    this.clock.clearTimeout(this.timer);
    this.#connect();
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
      ws = new this.WebSocket(this.url);
    } catch (err) {
      // Only a malformed URL throws here; retrying cannot fix it, but keep the loop uniform.
      const reason = err instanceof Error ? err.message : String(err);
      this.#onClose(null, { code: 1006, reason, wasClean: false });
      return;
    }
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    this.connectTimer = this.clock.setTimeout(() => {
      if (ws.readyState === CONNECTING) ws.close();
    }, CONNECT_TIMEOUT_MS);
    // A socket left behind by switchTo is no longer this connection's: its events are dropped.
    ws.addEventListener("open", () => {
      if (ws !== this.ws) return;
      this.clock.clearTimeout(this.connectTimer);
      this.openedAt = this.clock.now();
      this.#setState("connected");
      this.#emit("open", new Event("open"));
    });
    ws.addEventListener("message", (e) => {
      if (ws !== this.ws) return;
      this.#emit("message", new CustomEvent("message", { detail: { data: e.data } }));
    });
    ws.addEventListener("close", (e) => this.#onClose(ws, e));
  }

  /**
   * @param {WebSocket | null} ws null when the constructor threw
   * @param {{ code: number, reason: string, wasClean: boolean }} close
   */
  #onClose(ws, { code, reason, wasClean }) {
    // Checked first: the connect timer by then belongs to the socket that replaced this one.
    if (ws !== null && ws !== this.ws) return;
    this.clock.clearTimeout(this.connectTimer);
    const everOpened = ws !== null && this.state === "connected";
    this.ws = null;
    if (everOpened) {
      this.lastClose = { code, reason, wasClean, at: new Date() };
      if (this.clock.now() - this.openedAt >= HEALTHY_MS) this.attempt = 0;
    }
    this.openedAt = 0;
    this.#emit("close", new CustomEvent("close", { detail: { code, reason, wasClean, everOpened } }));

    // Only a server sends 1001 (a failed attempt ends in 1006), so it comes on a socket that opened.
    const goingAway = everOpened && code === 1001;
    const { attempt, baseMs, maxMs, drainWindowMs } = this;
    const delayMs = reconnectDelay({ attempt, baseMs, maxMs, goingAway, drainWindowMs }, this.random);
    this.attempt += 1;
    this.#setState("reconnecting", { delayMs });
    this.timer = this.clock.setTimeout(() => this.#connect(), delayMs);
  }
}

/**
 * A close as a person reads it: its code and reason, or the code's description when it gave none.
 * @param {{ code: number, reason: string }} close
 */
export function closeText(close) {
  return `${close.code} ${close.reason || describeClose(close.code)}`;
}

/**
 * The " in N s" after a status line while a reconnect waits (tenths under a second), else "".
 * @param {string} state the connection's state
 * @param {number} untilMs when the wait ends, on `performance.now()`'s clock
 * @param {number} nowMs
 */
export function countdownText(state, untilMs, nowMs) {
  if (state !== "reconnecting") return "";
  const s = Math.max(0, untilMs - nowMs) / 1000;
  return ` in ${s < 1 ? s.toFixed(1) : Math.ceil(s)} s`;
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
