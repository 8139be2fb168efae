// The status line both panels share (static/status-view.js), in each panel's words, its countdown,
// and the one clock that ticks for both, paused while the tab is hidden (static/dom.js).

import assert from "node:assert/strict";
import { test } from "node:test";
import { startTicker } from "../../static/dom.js";
import { StatusView, statusText } from "../../static/status-view.js";

const STREAM = { first: "Connecting…", connected: () => "Connected", waiting: "reconnecting", trying: "connecting", unreachable: "Server unreachable" };
const ROOM = { first: "Joining…", connected: () => "In the room as ada", waiting: "rejoining", trying: "rejoining", unreachable: "" };
const drained = { code: 1001, reason: "", wasClean: true, at: new Date(0) };

test("each panel says its state in its own words, and why the last connection ended while retrying", () => {
  const cases = [
    [{ state: "connecting", attempt: 0, lastClose: null }, "Connecting…", "Joining…"],
    [{ state: "connected", attempt: 0, lastClose: null }, "Connected", "In the room as ada"],
    [{ state: "reconnecting", attempt: 1, lastClose: drained }, "Closed: 1001 going away · reconnecting", "Closed: 1001 going away · rejoining"],
    [{ state: "connecting", attempt: 2, lastClose: drained }, "Closed: 1001 going away · connecting (attempt 3)…", "Closed: 1001 going away · rejoining (attempt 3)…"],
    [{ state: "reconnecting", attempt: 1, lastClose: null }, "Server unreachable · reconnecting", "rejoining"],
    [{ state: "connecting", attempt: 1, lastClose: null }, "Server unreachable · connecting (attempt 2)…", "rejoining (attempt 2)…"],
  ];
  for (const [detail, stream, room] of cases) {
    assert.equal(statusText(detail, STREAM), stream, JSON.stringify(detail));
    assert.equal(statusText(detail, ROOM), room, JSON.stringify(detail));
  }
});

/** Stand-ins for the three elements of a status line. */
function statusElements() {
  return { status: { dataset: {} }, text: { textContent: "" }, countdown: { textContent: "" } };
}

test("the view marks the state and counts a reconnect's wait down, only while it waits", () => {
  const el = statusElements();
  let now = 10_000;
  const view = new StatusView(/** @type {any} */ (el), STREAM, () => now);
  view.render({ state: "reconnecting", attempt: 1, lastClose: drained, delayMs: 4_500 });
  assert.deepEqual(el.status.dataset, { state: "reconnecting", attempt: "1", closeCode: "1001" });
  assert.equal(el.text.textContent, "Closed: 1001 going away · reconnecting");
  assert.equal(el.countdown.textContent, " in 5 s");
  now += 4_000;
  view.tick();
  assert.equal(el.countdown.textContent, " in 0.5 s");
  view.render({ state: "connecting", attempt: 1, lastClose: drained });
  assert.equal(el.countdown.textContent, "", "no countdown once it is trying");
  now += 1_000;
  view.tick();
  assert.equal(el.countdown.textContent, "");
});

test("refresh says the state again in words that changed meanwhile (the room's welcome)", () => {
  const el = statusElements();
  let name = null;
  const words = { ...ROOM, connected: () => (name === null ? "Joining…" : `In the room as ${name}`) };
  const view = new StatusView(/** @type {any} */ (el), words, () => 0);
  view.render({ state: "connected", attempt: 0, lastClose: null });
  assert.equal(el.text.textContent, "Joining…");
  name = "bob";
  view.refresh();
  assert.equal(el.text.textContent, "In the room as bob");
});

/** A document whose tab the test hides and shows, and timers that fire when the test says. */
function fakeTab() {
  const doc = Object.assign(new EventTarget(), { visibilityState: "visible" });
  const timers = {
    /** @type {Map<number, () => void>} */
    running: new Map(),
    next: 1,
    setInterval(fn) {
      const id = timers.next++;
      timers.running.set(id, fn);
      return id;
    },
    clearInterval(id) {
      timers.running.delete(id);
    },
    fire() {
      for (const fn of timers.running.values()) fn();
    },
  };
  const show = (state) => {
    doc.visibilityState = state;
    doc.dispatchEvent(new Event("visibilitychange"));
  };
  return { doc, timers, show };
}

test("the tick runs while the tab is visible, stops while it is hidden, and catches up when shown", () => {
  const { doc, timers, show } = fakeTab();
  let ticks = 0;
  startTicker(() => ticks++, 250, { doc, timers });
  assert.equal(ticks, 1, "at once, so the page is up to date from the start");
  timers.fire();
  timers.fire();
  assert.equal(ticks, 3);
  show("hidden");
  assert.equal(timers.running.size, 0, "no timer while hidden");
  timers.fire();
  assert.equal(ticks, 3);
  show("visible");
  assert.equal(ticks, 4, "shown again: brought up to date at once");
  assert.equal(timers.running.size, 1, "one timer, not one per time it was shown");
  show("visible");
  assert.equal(timers.running.size, 1);
});

test("a page opened in a background tab does not tick until it is shown", () => {
  const { doc, timers, show } = fakeTab();
  doc.visibilityState = "hidden";
  let ticks = 0;
  startTicker(() => ticks++, 250, { doc, timers });
  assert.deepEqual([ticks, timers.running.size], [0, 0]);
  show("visible");
  assert.deepEqual([ticks, timers.running.size], [1, 1]);
});
