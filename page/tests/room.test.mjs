// The Room panel's logic (static/room.js): which URL it (re)joins with, what each frame from /room
// means, the recovered marks after a reconnect, the duplicate check, the gap, the outbox, and
// leaving the room.

import assert from "node:assert/strict";
import { test } from "node:test";
import { Outbox, Room, hrefForName, parsePosition, roomFromPage, validName } from "../../static/room.js";

const PAGE = "http://127.0.0.1:8080/?backoff=200";

/** The frames /room sends, as JSON text. */
const welcome = (name, at) => JSON.stringify({ type: "welcome", room: "lobby", name, ...(at === undefined ? {} : { at }) });
const said = (n, text, at, from = "ada", epoch = "e1") =>
  JSON.stringify({ type: "room", id: `${n}.${epoch}`, from, text, at });

/** The texts of the messages the room shows, with their marks, for a list of frames. */
function shown(room, frames) {
  return frames
    .map((f) => room.read(f))
    .filter((r) => r.kind === "message")
    .map((r) => (r.recovered ? `${r.message.text} (recovered)` : r.message.text));
}

test("the first join has no last=; every later one comes back with the newest id seen", () => {
  const room = new Room({ room: "dev", name: "Ada L" });
  assert.equal(room.url(PAGE), "ws://127.0.0.1:8080/room?room=dev&name=Ada+L");
  room.read(welcome("Ada L", 1000));
  room.read(said(1, "one", 1001));
  room.read(said(2, "two", 1002));
  assert.equal(room.last, "2.e1");
  assert.equal(room.url(PAGE), "ws://127.0.0.1:8080/room?room=dev&name=Ada+L&last=2.e1");
  // Without a name the room picks one; https pages get wss.
  assert.equal(new Room().url("https://chat.example/"), "wss://chat.example/room?room=lobby");
  // Notices and errors move nothing.
  room.read(JSON.stringify({ type: "error", text: "no" }));
  room.read(JSON.stringify({ type: "gap", room: "dev" }));
  assert.equal(room.last, "2.e1");
});

test("on a first join nothing is recovered, even what was said a moment before it", () => {
  const room = new Room();
  assert.deepEqual(room.read(welcome("guest-00ab", 5000)), {
    kind: "welcome", room: "lobby", name: "guest-00ab", resumedFrom: null,
  });
  assert.deepEqual(shown(room, [said(7, "in flight", 4999), said(8, "live", 5001)]), ["in flight", "live"]);
  assert.equal(room.joinedAs, "guest-00ab");
});

test("after a reconnect with last=, what was said before the welcome is recovered, then live is not", () => {
  const room = new Room();
  room.read(welcome("bob", 1000));
  assert.deepEqual(shown(room, [said(1, "hello", 1500)]), ["hello"]);
  // The socket dropped; the page rejoins from 1.e1 at 9000 and the gateway replays 2 and 3 first.
  assert.equal(room.read(welcome("bob", 9000)).resumedFrom, "1.e1");
  assert.deepEqual(
    shown(room, [said(2, "missed 1", 3000), said(3, "missed 2", 8999), said(4, "live", 9000), said(5, "later", 9500)]),
    ["missed 1 (recovered)", "missed 2 (recovered)", "live", "later"],
  );
  assert.equal(room.last, "5.e1", "all five shown, none dropped as a repeat");
  // Reconnected again with nothing missed: the next live message is live.
  room.read(welcome("bob", 20_000));
  assert.deepEqual(shown(room, [said(6, "after", 20_001)]), ["after"]);
});

test("on Redis a tagged id is kept for last=, a repeat is dropped, and after a gap another publication at a seen position is shown", () => {
  const room = new Room({ room: "dev", name: "bob" });
  const tagged = (n, tag, text, at) => JSON.stringify({ type: "room", id: `${n}.e1.${tag}`, from: "ada", text, at });
  room.read(welcome("bob", 1000));
  const first = [tagged(1, "a", "one", 1001), tagged(2, "b", "two", 1002), tagged(3, "x", "three", 1003)];
  assert.deepEqual(shown(room, first), ["one", "two", "three"]);
  assert.equal(room.last, "3.e1.x", "the id comes back whole as last=");
  assert.equal(room.read(tagged(3, "x", "three", 1003)).kind, "duplicate", "the same publication again");
  assert.equal(room.read(tagged(1, "a", "one", 1001)).kind, "duplicate");
  // A Redis Cluster failover: the promoted replica never had 2 and 3 as shown here, and numbered
  // its own 2 and 3. The gateway sends the gap notice first, then them.
  assert.equal(room.read(JSON.stringify({ type: "gap", room: "dev" })).kind, "gap");
  const history = [tagged(2, "c", "two, the history's", 1004), tagged(3, "d", "three, the history's", 1005)];
  assert.deepEqual(shown(room, history), ["two, the history's", "three, the history's"]);
  assert.equal(room.last, "3.e1.d");
});

test("a message shown once is never shown again: same id, or a position at or before the newest", () => {
  const room = new Room();
  room.read(welcome("bob", 1000));
  assert.deepEqual(shown(room, [said(1, "a", 1100), said(2, "b", 1200)]), ["a", "b"]);
  room.read(welcome("bob", 5000));
  // A replay that overlaps what was shown (a bug elsewhere): the old ones are dropped, the new kept.
  const readings = [said(2, "b", 1200), said(1, "a", 1100), said(3, "c", 4000)].map((f) => room.read(f));
  assert.deepEqual(readings.map((r) => r.kind), ["duplicate", "duplicate", "message"]);
  assert.equal(readings.filter((r) => r.kind === "duplicate").length, 2);
  assert.equal(room.last, "3.e1");
  // A new history (another epoch) starts over at 1 and is shown.
  assert.deepEqual(shown(room, [said(1, "new history", 6000, "ada", "e2")]), ["new history"]);
  assert.equal(room.last, "1.e2");
});

test("a gap says that messages were lost and from where; the page keeps its position", () => {
  const room = new Room();
  room.read(welcome("bob", 1000));
  room.read(said(41, "old", 1100));
  room.read(welcome("bob", 9000));
  assert.deepEqual(room.read(JSON.stringify({ type: "gap", room: "lobby" })), { kind: "gap", room: "lobby", since: "41.e1" });
  assert.equal(room.last, "41.e1", "a gap moves no position");
  assert.equal(room.url(PAGE), "ws://127.0.0.1:8080/room?room=lobby&last=41.e1");
});

test("frames from the publish API (no at) show as live; unknown frames are reported, not dropped", () => {
  const room = new Room();
  room.read(welcome("bob", 1000));
  room.read(said(1, "x", 1000));
  room.read(welcome("bob", 2000));
  const api = JSON.stringify({ type: "room", id: "2.e1", from: "api", text: "from the api" });
  assert.deepEqual(shown(room, [api]), ["from the api"]);
  assert.deepEqual(room.read("<b>not json</b>"), { kind: "other", text: "<b>not json</b>" });
  assert.deepEqual(room.read(JSON.stringify({ type: "error", text: "too long" })), { kind: "error", text: "too long" });
  // A welcome without at (an older component) marks nothing rather than guessing.
  room.read(welcome("bob"));
  assert.deepEqual(shown(room, [said(3, "unknown", 1)]), ["unknown"]);
});

test("positions, names and the page's ?room= and ?name=", () => {
  assert.deepEqual(parsePosition("12.aB3"), { n: 12, epoch: "aB3", tag: null });
  assert.deepEqual(parsePosition("12.aB3.q0tv373z"), { n: 12, epoch: "aB3", tag: "q0tv373z" }, "Redis's form");
  for (const bad of ["12", ".e", "x.e", "1.e-f", `1.${"e".repeat(17)}`, "1.e.", "1.e.t.u", `1.e.${"t".repeat(17)}`]) {
    assert.equal(parsePosition(bad), null, bad);
  }
  assert.equal(validName("  Ada L "), "Ada L");
  assert.equal(validName(""), "");
  assert.equal(validName(" \n "), "", "blank is no name: the room gives a guest one");
  assert.equal(validName("a\nb"), null);
  assert.equal(validName("x".repeat(33)), null);
  assert.deepEqual(roomFromPage("http://h/?name=Ada&room=dev"), { room: "dev", name: "Ada", ignoredRoom: false, ignoredName: false });
  assert.deepEqual(roomFromPage("http://h/?room=a%20b&name=a%0ab"), { room: "lobby", name: "", ignoredRoom: true, ignoredName: true });
  assert.equal(hrefForName("Ada L", "http://h/?app=echo#x"), "http://h/?app=echo&name=Ada+L#x");
  assert.equal(hrefForName("", "http://h/?name=Ada&app=echo"), "http://h/?app=echo");
});

test("the outbox sends at once when it can, keeps the order while offline, and has a limit", () => {
  let open = false;
  const wire = [];
  const send = (t) => (open ? (wire.push(t), true) : false);
  const outbox = new Outbox(2);
  assert.equal(outbox.add("one", send), "queued");
  assert.equal(outbox.add("two", send), "queued");
  assert.equal(outbox.add("three", send), "full");
  open = true;
  assert.equal(outbox.flush(send), 2);
  assert.equal(outbox.add("four", send), "sent");
  assert.deepEqual(wire, ["one", "two", "four"]);
});

test("a socket that goes is out of the room until the next welcome; the position stays", () => {
  const room = new Room({ name: "bob" });
  room.read(welcome("bob", 1000));
  room.read(said(3, "x", 1100));
  assert.equal(room.joinedAs, "bob");
  room.left();
  assert.equal(room.joinedAs, null);
  assert.equal(room.url(PAGE), "ws://127.0.0.1:8080/room?room=lobby&name=bob&last=3.e1");
  room.read(welcome("bob", 2000));
  assert.equal(room.joinedAs, "bob");
});

test("within one connection, a position behind the newest is a repeat", () => {
  const room = new Room();
  room.read(welcome("bob", 1000));
  assert.equal(room.read(said(5, "five", 1100)).kind, "message");
  assert.equal(room.read(said(4, "four", 1050)).kind, "duplicate");
  assert.equal(room.read(said(5, "five", 1100)).kind, "duplicate");
  assert.equal(room.last, "5.e1");
});
