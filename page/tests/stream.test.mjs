// The stream panel's logic (static/stream.js): the messages you type from the send box to their echo
// (queued offline, sent in order, sent again after a socket is lost, counted once per app), the
// counters and the pushes per second. Last, a harness that plays many random sessions against a
// plain model of what a person is promised, printing its seed.

import assert from "node:assert/strict";
import { test } from "node:test";
import { Stream } from "../../static/stream.js";

/** A clock that moves only when told. */
function fakeClock(start = 1000) {
  const clock = { t: start, now: () => clock.t, wall: () => 1_733_100_000_000 + clock.t };
  return clock;
}

/** A socket the test opens and closes; `send` is what the model hands frames to. */
function fakeSocket() {
  const socket = {
    open: false,
    /** @type {object[]} chat frames on the wire, not yet echoed, oldest first */
    wire: [],
    /** @type {object[]} every frame sent, in order */
    sent: [],
    send: (text) => {
      if (!socket.open) return false;
      const frame = JSON.parse(text);
      socket.wire.push(frame);
      socket.sent.push(frame);
      return true;
    },
    /** /ws returns the oldest frame unchanged. */
    echo: () => JSON.stringify(socket.wire.shift()),
  };
  return socket;
}

const push = (seq, value = 0.5) => JSON.stringify({ type: "push", seq, ts: "2026-12-05T08:00:00Z", value });

test("typed while connected, a message goes out at once as a chat frame and its echo gives the RTT", () => {
  const clock = fakeClock();
  const stream = new Stream({ clock });
  const socket = fakeSocket();
  socket.open = true;
  stream.opened();
  const msg = stream.add("hello", socket.send);
  assert.equal(msg?.state, "sent");
  assert.deepEqual(socket.sent, [{ type: "chat", id: 1, text: "hello", sent: clock.wall() }]);
  assert.deepEqual(stream.counts, { sent: 1, echoes: 0, pushes: 0 });
  clock.t += 42;
  const reading = stream.read(socket.echo());
  assert.deepEqual(reading, { kind: "echoed", msg, rttMs: 42, n: null });
  assert.equal(msg?.state, "echoed");
  assert.deepEqual(stream.counts, { sent: 1, echoes: 1, pushes: 0 });
  assert.equal(stream.inflight.size, 0);
});

test("typed while offline, messages wait in order and all go out, oldest first, when a socket opens", () => {
  const stream = new Stream({ clock: fakeClock() });
  const socket = fakeSocket();
  const [a, b] = [stream.add("one", socket.send), stream.add("two", socket.send)];
  assert.deepEqual([a?.state, b?.state], ["pending", "pending"]);
  assert.deepEqual(stream.queue.map((m) => m.id), [1, 2]);
  assert.equal(stream.counts.sent, 0, "nothing is counted as sent before it went");
  socket.open = true;
  stream.opened();
  assert.deepEqual(stream.flush(socket.send).map((m) => m.text), ["one", "two"]);
  assert.deepEqual(socket.sent.map((f) => f.text), ["one", "two"]);
  assert.deepEqual([a?.state, b?.state, stream.queue.length, stream.counts.sent], ["sent", "sent", 0, 2]);
});

test("past the queue's limit a message is refused, and nothing of it is kept", () => {
  const stream = new Stream({ queueLimit: 3, clock: fakeClock() });
  const socket = fakeSocket();
  for (const text of ["a", "b", "c"]) assert.notEqual(stream.add(text, socket.send), null);
  assert.equal(stream.add("d", socket.send), null);
  assert.deepEqual(stream.queue.map((m) => m.text), ["a", "b", "c"]);
  socket.open = true;
  stream.flush(socket.send);
  assert.equal(stream.add("e", socket.send)?.id, 4, "the refused one used no id");
});

test("a socket lost under messages in flight: they go out again first on the next one, counted once", () => {
  const stream = new Stream({ clock: fakeClock() });
  const socket = fakeSocket();
  socket.open = true;
  stream.opened();
  stream.add("first", socket.send);
  stream.add("second", socket.send);
  socket.open = false;
  socket.wire.length = 0;
  assert.deepEqual(stream.closed().map((m) => [m.id, m.state]), [[1, "pending"], [2, "pending"]]);
  stream.add("third", socket.send);
  assert.deepEqual(stream.queue.map((m) => m.id), [1, 2, 3]);
  socket.open = true;
  stream.opened();
  stream.flush(socket.send);
  assert.deepEqual(socket.sent.map((f) => f.id), [1, 2, 1, 2, 3]);
  assert.equal(stream.counts.sent, 3, "sent again is not sent twice");
  for (let i = 0; i < 3; i++) assert.equal(stream.read(socket.echo()).kind, "echoed");
  assert.deepEqual(stream.counts, { sent: 3, echoes: 3, pushes: 0 });
});

test("a switch of apps: the counters start over and what was waiting counts as the new app's own", () => {
  const stream = new Stream({ clock: fakeClock() });
  const socket = fakeSocket();
  socket.open = true;
  stream.opened();
  stream.add("on /ws", socket.send);
  stream.read(push(1));
  assert.deepEqual(stream.counts, { sent: 1, echoes: 0, pushes: 1 });
  socket.open = false;
  assert.deepEqual(stream.switched().map((m) => m.text), ["on /ws"]);
  assert.deepEqual(stream.counts, { sent: 0, echoes: 0, pushes: 0 });
  assert.equal(stream.rate(), 0);
  socket.open = true;
  stream.flush(socket.send);
  assert.equal(stream.counts.sent, 1, "counted again, on the new app");
  // /echo wraps the chat frame as text and numbers it.
  const answer = JSON.stringify({ type: "echo", n: 1, text: JSON.stringify(socket.wire.shift()) });
  const reading = stream.read(answer);
  assert.equal(reading.kind, "echoed");
  assert.equal(reading.kind === "echoed" && reading.n, 1);
});

test("echoes of nothing the page waits for, and binary frames, are counted and shown as they came", () => {
  const stream = new Stream({ clock: fakeClock() });
  assert.deepEqual(stream.read("raw text"), { kind: "echo", text: "raw text", n: null });
  assert.deepEqual(stream.read(JSON.stringify({ type: "echo", n: 7, text: "raw" })), { kind: "echo", text: "raw", n: 7 });
  // An echo of a chat frame that is not in flight (answered already) is not matched twice.
  const late = JSON.stringify({ type: "chat", id: 9, text: "late", sent: 0 });
  assert.deepEqual(stream.read(late), { kind: "echo", text: "late", n: null });
  assert.deepEqual(stream.read(new ArrayBuffer(5)), { kind: "binary", bytes: 5 });
  assert.deepEqual(stream.counts, { sent: 0, echoes: 4, pushes: 0 });
});

test("pushes per second: over the first seconds divided by the time up (at least 1 s), then over 10 s", () => {
  const clock = fakeClock();
  const stream = new Stream({ clock });
  stream.opened();
  for (let i = 1; i <= 5; i++) {
    clock.t += 100;
    assert.equal(stream.read(push(i)).kind, "push");
  }
  assert.equal(stream.rate(), 5, "5 pushes in the first half second: 5 per second, not 0.5");
  clock.t += 1500; // 2 s up
  assert.equal(stream.rate(), 2.5);
  // One push a second for 20 s: the window holds 10 s of them.
  for (let i = 0; i < 20; i++) {
    clock.t += 1000;
    stream.read(push(100 + i));
  }
  assert.equal(stream.rate(), 1.1, "the 10 s window: its 11 pushes, the edge included");
  clock.t += 30_000;
  assert.equal(stream.rate(), 0, "old pushes fall out of the window");
  stream.closed();
  assert.equal(stream.connectedAt, null);
});

/** mulberry32: a small seeded generator, so a failing run can be replayed from its seed. */
function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * One random session: typing, sockets opening and dropping, echoes and pushes arriving, app switches;
 * after each step the model is checked against what a person is promised.
 */
function session(seed) {
  const rnd = random(seed);
  const clock = fakeClock();
  const limit = 1 + Math.floor(rnd() * 6);
  const stream = new Stream({ queueLimit: limit, clock });
  let socket = fakeSocket();
  /** The plain model: every accepted id, which are echoed, which were counted since the last switch. */
  const typed = [];
  const echoed = new Set();
  let sentSinceSwitch = new Set();
  let echoesSinceSwitch = 0;
  const steps = [];
  const check = (what) => {
    const where = `seed ${seed}, after ${steps.join(" ")} (${what})`;
    const queued = stream.queue.map((m) => m.id);
    const flying = [...stream.inflight.keys()];
    // Each message in exactly one place, in the state that place means.
    assert.deepEqual([...queued, ...flying, ...echoed].sort((a, b) => a - b), typed, where);
    assert.ok(stream.queue.every((m) => m.state === "pending"), where);
    assert.ok([...stream.inflight.values()].every((m) => m.state === "sent"), where);
    assert.deepEqual(queued, [...queued].sort((a, b) => a - b), `queue in typing order: ${where}`);
    // Each socket got each message once, in typing order.
    const ids = socket.sent.map((f) => f.id);
    assert.deepEqual(ids, [...new Set(ids)].sort((a, b) => a - b), `one socket's frames: ${where}`);
    assert.equal(stream.counts.sent, sentSinceSwitch.size, `Sent: ${where}`);
    assert.equal(stream.counts.echoes, echoesSinceSwitch, `Echoes: ${where}`);
  };
  for (let i = 0; i < 60; i++) {
    const r = rnd();
    if (r < 0.35) {
      steps.push("type");
      const before = stream.queue.length;
      const msg = stream.add(`m${i}`, socket.send);
      if (msg === null) assert.ok(before >= limit, `refused with room left: seed ${seed}`);
      else {
        assert.ok(before < limit, `taken past the limit: seed ${seed}`);
        typed.push(msg.id);
      }
    } else if (r < 0.5 && !socket.open) {
      steps.push("open");
      socket.open = true;
      stream.opened();
      stream.flush(socket.send);
    } else if (r < 0.6 && socket.open) {
      steps.push("drop");
      socket = fakeSocket();
      stream.closed();
    } else if (r < 0.8 && socket.wire.length > 0) {
      steps.push("echo");
      clock.t += 5;
      const reading = stream.read(socket.echo());
      assert.equal(reading.kind, "echoed", `seed ${seed}`);
      if (reading.kind === "echoed") echoed.add(reading.msg.id);
      echoesSinceSwitch += 1;
    } else if (r < 0.9 && socket.open) {
      steps.push("push");
      stream.read(push(i));
    } else if (r >= 0.9) {
      steps.push("switch");
      socket = fakeSocket();
      stream.switched();
      sentSinceSwitch = new Set();
      echoesSinceSwitch = 0;
    }
    for (const f of socket.sent) sentSinceSwitch.add(f.id);
    check("step");
  }
  // Connected for good: everything typed comes back, once each.
  if (!socket.open) {
    socket.open = true;
    stream.opened();
    stream.flush(socket.send);
    for (const f of socket.sent) sentSinceSwitch.add(f.id);
  }
  while (socket.wire.length > 0) {
    const reading = stream.read(socket.echo());
    if (reading.kind === "echoed") echoed.add(reading.msg.id);
    echoesSinceSwitch += 1;
  }
  check("the end");
  assert.deepEqual([...echoed].sort((a, b) => a - b), typed, `every accepted message echoed: seed ${seed}`);
}

test("generated sessions: every message in one place, each socket gets them once in order, all echoed in the end", () => {
  const first = Number(process.env.STREAM_SEED ?? Date.now() % 1_000_000);
  console.log(`stream sessions from seed ${first} (replay: STREAM_SEED=${first})`);
  for (let n = 0; n < 500; n++) session(first + n);
});
