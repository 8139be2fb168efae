// The page at every common screen size: each control of both panels (the stream and the Room) is on
// top where a person would click it once scrolled into view, and no card ever paints over another
// while the page scrolls. Screenshots per size: target/e2e/size-<W>x<H>.png, and -room.png with the
// Room panel scrolled into view.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { launch } from "../lib/browser.mjs";
import { startGateway } from "../lib/gateway.mjs";
import { CONTROLS, SIZES, overlappingCards, unreachable } from "../lib/layout.mjs";
import {
  sayInRoom, screenshot, typeAndSend, waitForCount, waitForEchoed, waitForRoomJoined, waitForRoomMessage, waitForStatus,
} from "../lib/page.mjs";

const TIMEOUT = { timeout: 90_000 };

/** One gateway for every size: the page is the same, only the window changes. */
let gateway;
before(async () => {
  gateway = await startGateway({ name: "layout" });
});
after(async () => {
  await gateway?.stop("SIGKILL");
});

for (const size of SIZES) {
  test(`at ${size.name} every control of both panels is on top where it is clicked, and no card covers another`, TIMEOUT, async (t) => {
    const { name, ...options } = size;
    const browser = await launch({ deviceScaleFactor: 1, ...options });
    t.after(() => browser.close());
    const { page } = browser;
    const response = await page.goto(gateway.url(`/?room=layout&name=${name}`));
    assert.equal(response?.status(), 200);
    await waitForStatus(page, "connected");
    assert.equal(await waitForRoomJoined(page), name);

    // Something in both panels, as a person would have after a minute.
    await typeAndSend(page, `Hello from a ${name} window`);
    await waitForEchoed(page, `Hello from a ${name} window`);
    await sayInRoom(page, `Hello room, from a ${name} window`);
    await waitForRoomMessage(page, `Hello room, from a ${name} window`);
    await waitForCount(page, ".entry-push", 8);

    // Screenshots before the checks, so a failure can be looked at: the top of the page (typing in the
    // room scrolled it there), then the Room panel.
    await page.evaluate(() => scrollTo(0, 0));
    await screenshot(page, `size-${name}`);
    await page.locator(".room-card").scrollIntoViewIfNeeded();
    await screenshot(page, `size-${name}-room`);

    const seen = {
      stream: await unreachable(page, CONTROLS.stream),
      room: await unreachable(page, CONTROLS.room),
      overlaps: await overlappingCards(page),
    };
    assert.deepEqual(seen, { stream: [], room: [], overlaps: [] }, `at ${name}, what a person cannot reach`);
    assert.deepEqual(browser.problems, []);
  });
}
