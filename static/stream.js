// What the stream panel knows about its socket's traffic, without a DOM or a socket: the messages the
// user typed, from the send box to their echo (queued while offline, in flight until echoed, sent again
// on the next socket when one closes under them), the counters, and the pushes per second
// (page/tests/stream.test.mjs). The view (stream-panel.js) shows what each call returns.
//
// A message is in exactly one place at a time: the queue (pending: waits for a socket), in flight
// (sent: waits for its echo), or done (echoed). Each socket gets the messages in the order they were
// typed; one lost with a socket goes out again ahead of anything typed after it.

/** @import { ChatFrame, PushFrame } from "./protocol.js" */
import { pendingFor, readFrame } from "./protocol.js";

/** Messages typed while offline wait here; past this the send box refuses more (and says so). */
export const QUEUE_LIMIT = 100;
/** Pushes per second is averaged over this window. */
export const RATE_WINDOW_MS = 10_000;

/**
 * A message the user typed, from the send box to its echo.
 * @typedef {object} Outgoing
 * @property {number} id numbers the messages of one page load, from 1
 * @property {string} text
 * @property {"pending" | "sent" | "echoed"} state pending: waits for a socket; sent: waits for its echo
 * @property {boolean} transmitted handed to a socket of the app in use at least once (counted in Sent once)
 * @property {number} sentWall epoch ms of the latest hand-over, 0 before the first
 * @property {number} sentPerf the clock's `now()` at the latest hand-over, for the RTT
 */

/**
 * What a frame from the socket means to the panel.
 * @typedef {{ kind: "push", push: PushFrame }
 *   | { kind: "echoed", msg: Outgoing, rttMs: number, n: number | null }
 *   | { kind: "echo", text: string, n: number | null }
 *   | { kind: "binary", bytes: number }} StreamReading
 */

/**
 * @typedef {object} StreamClock
 * @property {() => number} now monotonic ms, as performance.now()
 * @property {() => number} wall epoch ms, as Date.now()
 */

/** Hands a frame's text to the open socket; false when there is none. @typedef {(text: string) => boolean} Send */

/** @type {StreamClock} */
const realClock = { now: () => performance.now(), wall: () => Date.now() };

export class Stream {
  /** @param {{ queueLimit?: number, rateWindowMs?: number, clock?: StreamClock }} options */
  constructor({ queueLimit = QUEUE_LIMIT, rateWindowMs = RATE_WINDOW_MS, clock = realClock } = {}) {
    this.queueLimit = queueLimit;
    this.rateWindowMs = rateWindowMs;
    this.clock = clock;
    /** Of the app in use: they start over with each app. */
    this.counts = { sent: 0, echoes: 0, pushes: 0 };
    /** @type {Outgoing[]} typed but not yet handed to an open socket, oldest first */
    this.queue = [];
    /** @type {Map<number, Outgoing>} on the wire, waiting for their echo, by id */
    this.inflight = new Map();
    this.nextId = 1;
    /** @type {number | null} when the socket in use opened; null while there is none */
    this.connectedAt = null;
    /** @type {number[]} push arrival times inside the rate window, oldest first */
    this.pushTimes = [];
  }

  /**
   * The user typed `text`: it goes out at once if `send` takes it, behind whatever still waits; null
   * (and nothing kept) when the queue is full.
   * @param {string} text
   * @param {Send} send
   * @returns {Outgoing | null} its state says whether it went ("sent") or waits ("pending")
   */
  add(text, send) {
    if (this.queue.length >= this.queueLimit) return null;
    /** @type {Outgoing} */
    const msg = { id: this.nextId++, text, state: "pending", transmitted: false, sentWall: 0, sentPerf: 0 };
    this.queue.push(msg);
    this.flush(send);
    return msg;
  }

  /**
   * Hands what waits to `send`, oldest first, until it refuses one.
   * @param {Send} send
   * @returns {Outgoing[]} the ones that went
   */
  flush(send) {
    const went = [];
    while (this.queue.length > 0 && this.#transmit(this.queue[0], send)) went.push(/** @type {Outgoing} */ (this.queue.shift()));
    return went;
  }

  /**
   * @param {Outgoing} msg
   * @param {Send} send
   */
  #transmit(msg, send) {
    const sentWall = this.clock.wall();
    /** @type {ChatFrame} */
    const frame = { type: "chat", id: msg.id, text: msg.text, sent: sentWall };
    if (!send(JSON.stringify(frame))) return false;
    msg.sentWall = sentWall;
    msg.sentPerf = this.clock.now();
    if (!msg.transmitted) this.counts.sent += 1;
    msg.transmitted = true;
    msg.state = "sent";
    this.inflight.set(msg.id, msg);
    return true;
  }

  /** A socket opened: the push rate counts from now. */
  opened() {
    this.connectedAt = this.clock.now();
  }

  /**
   * The socket closed under the messages still waiting for their echo: they wait for the next one,
   * ahead of anything typed later.
   * @returns {Outgoing[]} the ones that are pending again
   */
  closed() {
    this.connectedAt = null;
    const lost = [...this.inflight.values()].sort((a, b) => a.id - b.id);
    this.inflight.clear();
    for (const msg of lost) msg.state = "pending";
    this.queue.unshift(...lost);
    return lost;
  }

  /**
   * Another app's socket replaces this one: what was in flight waits for it, every waiting message
   * counts as the new app's own once sent, and the counters and the rate start over.
   * @returns {Outgoing[]} the ones that are pending again
   */
  switched() {
    const lost = this.closed();
    for (const msg of this.queue) msg.transmitted = false;
    this.counts = { sent: 0, echoes: 0, pushes: 0 };
    this.pushTimes.length = 0;
    return lost;
  }

  /**
   * What a frame from the socket means; keeps the counters, the rate and the messages in step.
   * @param {string | ArrayBuffer} data
   * @returns {StreamReading}
   */
  read(data) {
    if (typeof data !== "string") {
      this.counts.echoes += 1;
      return { kind: "binary", bytes: data.byteLength };
    }
    const reading = readFrame(data);
    if (reading.kind === "push") {
      this.counts.pushes += 1;
      this.pushTimes.push(this.clock.now());
      return reading;
    }
    this.counts.echoes += 1;
    const msg = pendingFor(reading, this.inflight);
    if (msg === undefined) return { kind: "echo", text: reading.text, n: reading.n };
    this.inflight.delete(msg.id);
    msg.state = "echoed";
    return { kind: "echoed", msg, rttMs: this.clock.now() - msg.sentPerf, n: reading.n };
  }

  /**
   * Pushes per second over the window; over the first seconds of a connection divided by the time it
   * has been up (at least a second), not by the whole window.
   */
  rate() {
    const now = this.clock.now();
    while (this.pushTimes.length > 0 && this.pushTimes[0] < now - this.rateWindowMs) this.pushTimes.shift();
    const up = this.connectedAt === null ? this.rateWindowMs : now - this.connectedAt;
    return (this.pushTimes.length * 1000) / Math.min(this.rateWindowMs, Math.max(1000, up));
  }
}
