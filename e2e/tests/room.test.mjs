// The Room panel in two browsers on two gateway replicas that share one real redis-server: each
// sees what the other says; the one whose gateway is killed comes back by itself to a gateway
// restarted on the same port and shows what it missed, once each, marked recovered, then live.

import assert from "node:assert/strict";
import { test } from "node:test";
import { launch } from "../lib/browser.mjs";
import { startGateway } from "../lib/gateway.mjs";
import {
  roomMessages, sayInRoom, screenshot, waitForCount, waitForRoomJoined, waitForRoomMessage, waitForRoomStatus, waitForStatus,
} from "../lib/page.mjs";
import { startRedis } from "../lib/redis.mjs";

const TIMEOUT = { timeout: 150_000 };
/** A short backoff (see app.js), so the page finds the restarted gateway within a second or two. */
const FAST_RECONNECT = "backoff=200&backoffmax=1000&drainwindow=300";
/** The restarted gateway compiles the component first: seconds on a busy 2-core machine. */
const RESTART_WAIT = 60_000;

test("two browsers in a room on two replicas: each sees the other; the one whose gateway died gets what it missed, once each, marked recovered", TIMEOUT, async (t) => {
  const redis = await startRedis({ name: "room-redis" });
  /** @type {Array<{ stop: (signal?: string) => Promise<unknown> }>} */
  const gateways = [];
  /** @type {Array<{ close: () => Promise<void> }>} */
  const browsers = [];
  t.after(async () => {
    await Promise.all(browsers.map((b) => b.close()));
    await Promise.all(gateways.map((g) => g.stop("SIGKILL")));
    await redis.stop();
  });
  const args = ["--redis", redis.url, "--no-push"];
  const start = async (name, listen) => {
    const gateway = await startGateway({ name, listen, extraArgs: args });
    gateways.push(gateway);
    return gateway;
  };
  const [one, two] = [await start("room-1"), await start("room-2")];
  const [ada, bob] = [await launch(), await launch()];
  browsers.push(ada, bob);

  await ada.page.goto(one.url(`/?name=ada&room=e2e&${FAST_RECONNECT}`));
  await bob.page.goto(two.url(`/?name=bob&room=e2e&${FAST_RECONNECT}`));
  assert.equal(await waitForRoomJoined(ada.page), "ada");
  assert.equal(await waitForRoomJoined(bob.page), "bob");
  // The stream beside it has its own socket and keeps running.
  await waitForStatus(ada.page, "connected");
  assert.match(await ada.page.locator("#room-status").innerText(), /In the room as ada/);
  assert.equal(await ada.page.locator("#room-name").innerText(), "e2e");

  // Each sees what the other says, across the two replicas, and their own, marked as theirs.
  await sayInRoom(ada.page, "hello from ada <b>not bold</b>");
  await waitForRoomMessage(bob.page, "hello from ada <b>not bold</b>");
  await sayInRoom(bob.page, "hi from bob");
  await waitForRoomMessage(ada.page, "hi from bob");
  await waitForRoomMessage(bob.page, "hi from bob");
  const before = await roomMessages(bob.page);
  assert.deepEqual(
    before.map((m) => [m.from, m.text, m.mine, m.recovered]),
    [["ada", "hello from ada <b>not bold</b>", false, false], ["bob", "hi from bob", true, false]],
  );
  assert.equal(await bob.page.locator("#room-log b").count(), 0, "a message's text is text, never HTML");
  assert.equal(await ada.page.getByRole("textbox", { name: "Say in the room" }).inputValue(), "", "the box is cleared");

  // Bob's gateway crashes (no close frame); Ada's keeps going and she talks on.
  await two.stop("SIGKILL");
  await waitForRoomStatus(bob.page, "reconnecting");
  await bob.page.locator('#room-log .room-notice[data-what="closed"]').waitFor();
  const missed = ["missed one", "missed two", "missed three"];
  for (const text of missed) await sayInRoom(ada.page, text);
  for (const text of missed) await waitForRoomMessage(ada.page, text);

  // A new gateway on the same port: Bob's page rejoins by itself, from the last message it saw.
  const again = await start("room-2-again", two.addr);
  assert.equal(again.addr, two.addr);
  await waitForCount(bob.page, '#room-log .room-notice[data-what="joined"]', 2, RESTART_WAIT);
  assert.equal(await waitForRoomJoined(bob.page), "bob");
  await waitForRoomMessage(bob.page, "missed three").catch(async (err) => {
    const shown = (await roomMessages(bob.page)).map((m) => m.text);
    throw new Error(`after rejoining, the room shows ${JSON.stringify(shown)}, not what was missed`, { cause: err });
  });
  assert.equal(
    bob.room.sockets.at(-1),
    `ws://${two.addr}/room?room=e2e&name=bob&last=${encodeURIComponent(before[1].id)}`,
    "it came back with last= the id of the newest message it had",
  );
  await sayInRoom(ada.page, "live again");
  await waitForRoomMessage(bob.page, "live again");

  const after = await roomMessages(bob.page);
  assert.deepEqual(
    after.map((m) => [m.from, m.text, m.recovered, m.mark]),
    [
      ["ada", "hello from ada <b>not bold</b>", false, null],
      ["bob", "hi from bob", false, null],
      ["ada", "missed one", true, "recovered"],
      ["ada", "missed two", true, "recovered"],
      ["ada", "missed three", true, "recovered"],
      ["ada", "live again", false, null],
    ],
    "every message once, in order; only the missed ones marked",
  );
  assert.equal(new Set(after.map((m) => m.id)).size, after.length, "no id twice");
  // Ada saw the same messages at the same positions (her own comes back through the room too, and
  // may reach Bob first).
  await waitForRoomMessage(ada.page, "live again");
  assert.deepEqual((await roomMessages(ada.page)).map((m) => [m.id, m.text]), after.map((m) => [m.id, m.text]));
  // On the wire, too, the gateway sent each missed message once.
  const received = bob.room.frames.received.map((f) => JSON.parse(f)).filter((f) => f.type === "room");
  assert.deepEqual(received.map((f) => f.text), after.map((m) => m.text));
  assert.equal(await bob.page.locator('#room-log .room-notice[data-what="gap"]').count(), 0, "nothing was lost");

  // Bob talks again, and Ada, who never left, sees it live.
  await sayInRoom(bob.page, "bob is back");
  await waitForRoomMessage(ada.page, "bob is back");
  assert.equal((await roomMessages(ada.page)).filter((m) => m.recovered).length, 0);
  await bob.page.locator(".room-card").scrollIntoViewIfNeeded();
  await screenshot(bob.page, "desktop-room");
  assert.deepEqual(ada.unexpectedProblems(), []);
  assert.deepEqual(bob.unexpectedProblems(), []);
});
