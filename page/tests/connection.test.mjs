// The reconnect logic of static/connection.js, without a browser: how long the page waits after each
// close (a drain's 1001 included), when that wait starts over, and what skips it. A fake socket, clock and random source stand
// in for the browser's (fakes.mjs), so every wait is exact and no test sleeps.

import assert from "node:assert/strict";
import { test } from "node:test";
import {
  CONNECT_TIMEOUT_MS, DRAIN_WINDOW_MS, HEALTHY_MS, MAX_BACKOFF_MS, backoffCeiling, countdownText,
  reconnectDelay,
} from "../../static/connection.js";
import { harness } from "./fakes.mjs";

/** Just below 1: Math.random never returns 1 itself. */
const ALMOST_ONE = 1 - 2 ** -53;

test("the backoff ceiling doubles from the base delay and stops at 30 s", () => {
  const ceilings = Array.from({ length: 9 }, (_, attempt) => backoffCeiling(attempt, 500, MAX_BACKOFF_MS));
  assert.deepEqual(ceilings, [500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
  // However long the outage, the ceiling stays a number a timer can take.
  assert.equal(backoffCeiling(10_000, 500, MAX_BACKOFF_MS), 30_000);
  assert.equal(backoffCeiling(3, 200, 2000), 1600);
  assert.equal(backoffCeiling(4, 200, 2000), 2000);
});

test("equal jitter: each wait lies between half and all of its ceiling", () => {
  for (let attempt = 0; attempt < 10; attempt++) {
    const ceiling = backoffCeiling(attempt, 500, MAX_BACKOFF_MS);
    const p = { attempt, baseMs: 500, maxMs: MAX_BACKOFF_MS, goingAway: false, drainWindowMs: DRAIN_WINDOW_MS };
    assert.equal(reconnectDelay(p, () => 0), ceiling / 2, `attempt ${attempt}, lowest`);
    assert.equal(reconnectDelay(p, () => 0.5), (3 * ceiling) / 4, `attempt ${attempt}, middle`);
    assert.equal(reconnectDelay(p, () => ALMOST_ONE), ceiling, `attempt ${attempt}, highest`);
  }
});

test("failed attempts wait longer each time, up to 30 s, and retry exactly when the wait is over", () => {
  const h = harness({ random: () => ALMOST_ONE });
  const waits = [];
  for (let i = 0; i < 9; i++) {
    h.socket.fail();
    assert.equal(h.connection.state, "reconnecting");
    waits.push(h.lastWait);
    h.nextAttempt();
    assert.equal(h.connection.state, "connecting");
  }
  assert.deepEqual(waits, [500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
  // The status line counts the attempts.
  assert.deepEqual(h.states.filter((s) => s.state === "connecting").map((s) => s.attempt), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
});

test("the jitter comes from the random source: two pages that lost the same gateway wait differently", () => {
  const low = harness({ random: () => 0 });
  const high = harness({ random: () => ALMOST_ONE });
  for (const h of [low, high]) h.socket.fail();
  assert.equal(low.lastWait, 250);
  assert.equal(high.lastWait, 500);
});

test("a connection that stayed up for 2 s resets the backoff; a shorter one does not", () => {
  const h = harness({ random: () => ALMOST_ONE });
  for (let i = 0; i < 4; i++) {
    h.socket.fail();
    h.nextAttempt();
  }
  assert.equal(h.connection.attempt, 4);

  // Up, but dropped before it proved healthy: the outage goes on, so does the backoff.
  h.socket.open();
  h.clock.advance(HEALTHY_MS - 1);
  h.socket.fail();
  assert.equal(h.lastWait, 8000);
  h.nextAttempt();

  // Up long enough: the next drop is a fresh blip, back to the base delay.
  h.socket.open();
  h.clock.advance(HEALTHY_MS);
  h.socket.fail();
  assert.equal(h.lastWait, 500);
  h.nextAttempt();
  h.socket.fail();
  assert.equal(h.lastWait, 1000, "and it grows again from there");
});

test("the close that ended an open connection is reported with its code; failed attempts are not", () => {
  const h = harness();
  const closes = [];
  h.connection.on("close", (e) => closes.push(e.detail));
  h.socket.open();
  assert.equal(h.connection.connected, true);
  h.socket.serverClose(1011, "boom");
  h.nextAttempt().fail();
  assert.deepEqual(closes, [
    { code: 1011, reason: "boom", wasClean: true, everOpened: true },
    { code: 1006, reason: "", wasClean: false, everOpened: false },
  ]);
  // The reason the last real connection ended stays in view while the retries fail.
  assert.equal(h.states.at(-1).lastClose.code, 1011);
});

test("Reconnect now and the browser coming back online skip the rest of the wait", () => {
  const h = harness({ random: () => ALMOST_ONE });
  for (let i = 0; i < 6; i++) {
    h.socket.fail();
    h.nextAttempt();
  }
  h.socket.fail();
  assert.equal(h.lastWait, 30_000);
  const before = h.sockets.length;
  h.connection.reconnectNow();
  assert.equal(h.sockets.length, before + 1, "Reconnect now tries at once");
  // The skipped timer does not fire a second attempt later.
  h.clock.advance(30_000);
  assert.equal(h.sockets.length, before + 1);

  h.socket.fail();
  h.network.dispatchEvent(new Event("online"));
  assert.equal(h.sockets.length, before + 2, "online tries at once");
  // Outside a wait neither does anything.
  h.connection.reconnectNow();
  h.network.dispatchEvent(new Event("online"));
  assert.equal(h.sockets.length, before + 2);
});

test("an attempt stuck connecting is given up after 10 s and retried with the backoff", () => {
  const h = harness({ random: () => 0 });
  h.clock.advance(CONNECT_TIMEOUT_MS - 1);
  assert.equal(h.connection.state, "connecting");
  h.clock.advance(1);
  assert.equal(h.connection.state, "reconnecting");
  assert.equal(h.lastWait, 250);
  // An attempt that opened in time is not cut off by that timer.
  h.nextAttempt().open();
  h.clock.advance(CONNECT_TIMEOUT_MS * 2);
  assert.equal(h.connection.state, "connected");
});

test("frames pass through once open; sending without an open socket says so", () => {
  const h = harness();
  /** @type {unknown[]} */
  const received = [];
  h.connection.on("message", (e) => received.push(e.detail.data));
  assert.equal(h.connection.send("early"), false);
  let opened = 0;
  h.connection.on("open", () => (opened += 1));
  h.socket.open();
  assert.equal(opened, 1);
  assert.equal(h.connection.send('{"type":"chat"}'), true);
  assert.deepEqual(h.socket.sent, ['{"type":"chat"}']);
  h.socket.receive('{"type":"push"}');
  assert.deepEqual(received, ['{"type":"push"}']);
  assert.equal(h.socket.binaryType, "arraybuffer", "binary frames arrive as ArrayBuffer, not Blob");
  h.socket.fail();
  assert.equal(h.connection.send("late"), false);
});

test("after a 1001 the wait is full jitter: uniform over the drain window, 5 s by default", () => {
  assert.equal(DRAIN_WINDOW_MS, 5000, "the gateway's default --drain-spread");
  const drain = { attempt: 0, baseMs: 500, maxMs: MAX_BACKOFF_MS, goingAway: true, drainWindowMs: 5000 };
  assert.equal(reconnectDelay(drain, () => 0), 0);
  assert.equal(reconnectDelay(drain, () => 0.1), 500);
  assert.equal(reconnectDelay(drain, () => 0.5), 2500);
  assert.equal(reconnectDelay(drain, () => ALMOST_ONE), 5000);
  // Whatever the backoff had reached: the server went away on purpose, it did not fail.
  assert.equal(reconnectDelay({ ...drain, attempt: 9 }, () => 0.5), 2500);

  // A page draws its wait anywhere in the window, the low end included (equal jitter never goes
  // below half its ceiling): that is what spreads a replica's clients out.
  const waits = [0, 0.05, 0.25, 0.5, 0.75, ALMOST_ONE].map((r) => {
    const h = harness({ random: () => r });
    h.socket.open();
    h.clock.advance(HEALTHY_MS);
    h.socket.serverClose(1001, "going away");
    return h.lastWait;
  });
  assert.deepEqual(waits, [0, 250, 1250, 2500, 3750, 5000]);
});

test("the drain window can be set (?drainwindow=), within 0 to 30 s", () => {
  for (const [drainWindowMs, wait] of [[800, 400], [0, 0], [-5, 0], [120_000, 15_000]]) {
    const h = harness({ drainWindowMs, random: () => 0.5 });
    h.socket.open();
    h.socket.serverClose(1001);
    assert.equal(h.lastWait, wait, `drainWindowMs ${drainWindowMs}`);
  }
});

test("after a drain's wait, a failing successor gets the usual backoff again", () => {
  const h = harness({ random: () => ALMOST_ONE });
  h.socket.open();
  h.clock.advance(60_000);
  h.socket.serverClose(1001, "going away");
  assert.equal(h.lastWait, DRAIN_WINDOW_MS);
  // The old gateway is gone and the new one is not up yet: these are failures, not drains.
  h.nextAttempt().fail();
  assert.equal(h.lastWait, 1000);
  h.nextAttempt().fail();
  assert.equal(h.lastWait, 2000);
  h.nextAttempt().open();
  assert.equal(h.connection.state, "connected");
});

test("only a 1001 gets the drain's wait: other closes from the server back off as before", () => {
  for (const code of [1000, 1006, 1011, 1012, 1013]) {
    const h = harness({ random: () => 0 });
    h.socket.open();
    h.clock.advance(HEALTHY_MS);
    if (code === 1006) h.socket.fail();
    else h.socket.serverClose(code);
    assert.equal(h.lastWait, 250, `close ${code}`);
  }
});

test("switching closes the open socket with 1000 and opens the new URL at once", async () => {
  const h = harness();
  const closes = [];
  const received = [];
  h.connection.on("close", (e) => closes.push(e.detail));
  h.connection.on("message", (e) => received.push(e.detail.data));
  h.socket.open();
  const old = h.socket;

  const ended = h.connection.switchTo("ws://page.test/echo");
  assert.deepEqual(old.closedWith, { code: 1000, reason: "switching app" });
  assert.equal(h.sockets.length, 2, "no wait before the new app's socket");
  assert.equal(h.socket.url, "ws://page.test/echo");
  assert.equal(h.connection.url, "ws://page.test/echo");
  assert.deepEqual(h.states.at(-1), { state: "connecting", attempt: 0, lastClose: null });

  // Whatever the old socket still does is not the connection's: no frame, no close, no reconnect.
  old.receive('{"type":"push","seq":9,"ts":"","value":0.5}');
  old.answerClose();
  assert.deepEqual(await ended, { code: 1000, reason: "switching app", wasClean: true, everOpened: true });
  assert.deepEqual(received, []);
  assert.deepEqual(closes, []);
  assert.equal(h.connection.state, "connecting");
  h.socket.open();
  h.socket.receive('{"type":"echo","n":1,"text":"x"}');
  assert.deepEqual(received, ['{"type":"echo","n":1,"text":"x"}']);
  h.clock.advance(60_000);
  assert.equal(h.sockets.length, 2);
});

test("the old socket's late close does not cancel the new socket's connect timeout", () => {
  const h = harness({ random: () => 0 });
  h.socket.open();
  const old = h.socket;
  h.connection.switchTo("ws://page.test/echo");
  h.clock.advance(CONNECT_TIMEOUT_MS - 1);
  old.answerClose();
  assert.equal(h.connection.state, "connecting");
  h.clock.advance(1);
  assert.equal(h.connection.state, "reconnecting", "the stuck attempt on the new URL is still given up");
  assert.equal(h.lastWait, 250);
});

test("switching during a backoff skips the wait and starts the new URL's backoff afresh", async () => {
  const h = harness({ random: () => ALMOST_ONE });
  for (let i = 0; i < 5; i++) {
    h.socket.fail();
    h.nextAttempt();
  }
  h.socket.fail();
  assert.equal(h.lastWait, 16_000);
  const ended = h.connection.switchTo("ws://page.test/echo");
  assert.equal(await ended, null, "no socket was open or opening");
  assert.equal(h.sockets.length, 7, "the new URL is tried at once");
  h.socket.fail();
  assert.equal(h.lastWait, 500, "the old URL's failures do not count against the new one");
  assert.equal(h.nextAttempt().url, "ws://page.test/echo");
  h.socket.open();
  // The old URL's timer was cancelled: it does not fire an attempt of its own later.
  h.clock.advance(16_000);
  assert.equal(h.sockets.length, 8);
  assert.equal(h.connection.state, "connected");
});

test("switching while an attempt is still connecting gives it up", async () => {
  const h = harness();
  const first = h.socket;
  const ended = h.connection.switchTo("ws://page.test/echo");
  assert.equal(first.readyState, 3);
  assert.deepEqual(await ended, { code: 1006, reason: "", wasClean: false, everOpened: false });
  assert.equal(h.connection.state, "connecting");
  assert.equal(h.socket.url, "ws://page.test/echo");
});

test("the reconnect countdown shows whole seconds, tenths under one, and nothing unless waiting", () => {
  assert.equal(countdownText("reconnecting", 5200, 1000), " in 5 s");
  assert.equal(countdownText("reconnecting", 1400, 1000), " in 0.4 s");
  assert.equal(countdownText("reconnecting", 900, 1000), " in 0.0 s", "never negative");
  assert.equal(countdownText("connected", 5200, 1000), "");
});
