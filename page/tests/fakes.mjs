// Stand-ins for what a browser gives connection.js: a WebSocket the test opens and closes by hand,
// a clock that moves only when told, and a random source that returns what the test chose.

import { Connection } from "../../static/connection.js";

/** A WebSocket whose server side is the test: `open()`, `serverClose(code)`, `fail()`. */
export class FakeSocket extends EventTarget {
  /** @param {string} url */
  constructor(url) {
    super();
    this.url = url;
    this.readyState = 0; // CONNECTING
    this.binaryType = "blob";
    /** @type {string[]} */
    this.sent = [];
  }

  send(text) {
    if (this.readyState !== 1) throw new Error("send on a socket that is not open");
    this.sent.push(text);
  }

  /**
   * The page closes it. Still connecting, it is given up at once (as the browser does: a close that
   * never reached a server is 1006); open, it is closing until the server answers (`answerClose`).
   */
  close(code = 1005, reason = "") {
    if (this.readyState === 0) {
      this.#closed(1006, "", false);
    } else if (this.readyState === 1) {
      this.readyState = 2; // CLOSING
      /** @type {{ code: number, reason: string } | undefined} what the page's Close frame said */
      this.closedWith = { code, reason };
    }
  }

  /** The server answers the page's Close with the same code, as /ws and /echo do. */
  answerClose() {
    if (this.closedWith === undefined) throw new Error("the page has not closed this socket");
    this.#closed(this.closedWith.code, this.closedWith.reason, true);
  }

  open() {
    this.readyState = 1;
    this.dispatchEvent(new Event("open"));
  }

  /** The server closed it with a close frame. */
  serverClose(code, reason = "") {
    this.#closed(code, reason, true);
  }

  /** The attempt failed, or the connection dropped without a close frame. */
  fail() {
    this.#closed(1006, "", false);
  }

  receive(data) {
    const event = new Event("message");
    event.data = data;
    this.dispatchEvent(event);
  }

  #closed(code, reason, wasClean) {
    if (this.readyState === 3) return;
    this.readyState = 3;
    const event = new Event("close");
    Object.assign(event, { code, reason, wasClean });
    this.dispatchEvent(event);
  }
}

/** setTimeout and a monotonic clock that move only through `advance`. */
export class FakeClock {
  t = 10_000;
  #next = 1;
  /** @type {Map<number, { at: number, fn: () => void }>} */
  #timers = new Map();

  now = () => this.t;
  setTimeout = (fn, ms) => {
    const id = this.#next++;
    this.#timers.set(id, { at: this.t + ms, fn });
    return id;
  };
  clearTimeout = (id) => {
    this.#timers.delete(id);
  };

  /** Moves time forward by `ms`, running every timer that falls due on the way, in order. */
  advance(ms) {
    const end = this.t + ms;
    for (;;) {
      let due = null;
      for (const [id, timer] of this.#timers) {
        if (timer.at <= end && (due === null || timer.at < due[1].at)) due = [id, timer];
      }
      if (due === null) break;
      this.#timers.delete(due[0]);
      this.t = due[1].at;
      due[1].fn();
    }
    this.t = end;
  }
}

/**
 * A started Connection on fakes, and what it did: the sockets it opened and every `state` event.
 * @param {{ random?: () => number, baseMs?: number, maxMs?: number, drainWindowMs?: number }} options
 */
export function harness({ random = () => 0.5, ...options } = {}) {
  const clock = new FakeClock();
  /** @type {FakeSocket[]} */
  const sockets = [];
  class Socket extends FakeSocket {
    constructor(url) {
      super(url);
      sockets.push(this);
    }
  }
  const network = new EventTarget();
  const connection = new Connection("ws://page.test/ws", {
    ...options,
    random,
    clock,
    WebSocket: Socket,
    network,
  });
  const states = [];
  connection.on("state", (e) => states.push(e.detail));
  connection.start();
  return {
    connection,
    clock,
    sockets,
    states,
    network,
    /** The socket the connection is on now (the latest it created). */
    get socket() {
      return sockets[sockets.length - 1];
    },
    /** The wait the connection announced after the latest close. */
    get lastWait() {
      const last = states.findLast((s) => s.state === "reconnecting");
      if (last === undefined) throw new Error("no reconnect announced yet");
      return last.delayMs;
    },
    /**
     * Waits out the announced delay on the fake clock and checks that the next attempt starts exactly
     * then, not a millisecond earlier; returns the new socket.
     */
    nextAttempt() {
      const before = sockets.length;
      const wait = this.lastWait;
      if (wait > 0) {
        clock.advance(wait - 1);
        if (sockets.length !== before) throw new Error(`reconnected before the ${wait} ms wait was over`);
        clock.advance(1);
      } else {
        clock.advance(0);
      }
      if (sockets.length !== before + 1) throw new Error(`no new attempt after the ${wait} ms wait`);
      return this.socket;
    },
  };
}
