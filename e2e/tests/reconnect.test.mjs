// sidestream's page keeps itself connected: the gateway crashes or drains, a new one starts on the same
// port, and the page comes back by itself without losing what the person typed in between.

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { setup } from "../lib/fixture.mjs";
import { OUT_DIR } from "../lib/paths.mjs";
import { chatEntry, counters, statusText, typeAndSend, waitForCount, waitForStatus } from "../lib/page.mjs";

const TIMEOUT = { timeout: 90_000 };
// A short first delay and ceiling (see app.js) so the page notices the new gateway within a second
// or two, and a short window for the wait after a drain; the logic itself is the same as with the
// defaults.
const FAST_RECONNECT = "/?backoff=200&backoffmax=2000&drainwindow=300";
const RESTART_WAIT = 30_000;

test("a message typed while the gateway is down stays pending and is sent after it comes back", TIMEOUT, async (t) => {
  const { gateway, browser, page, startGateway } = await setup(t, { name: "restart" });
  await page.goto(gateway.url(FAST_RECONNECT));
  await waitForStatus(page, "connected");
  await waitForCount(page, ".entry-push", 1);

  // A crash, not a drain: the socket just drops (1006, no close frame).
  await gateway.stop("SIGKILL");
  assert.match(await waitForStatus(page, "reconnecting"), /^Closed: 1006 connection lost · reconnecting in \d/);

  await typeAndSend(page, "typed while the gateway was down");
  const entry = chatEntry(page, "typed while the gateway was down");
  await entry.and(page.locator('[data-state="pending"]')).waitFor();
  assert.match(await entry.locator(".meta").innerText(), /pending/);
  assert.equal((await counters(page)).pending, 1);
  assert.match(await page.locator("#send-hint").innerText(), /queued/);
  // The page keeps trying on its own, and the message is still waiting after failed attempts.
  await page.waitForFunction(() => Number(document.getElementById("status").dataset.attempt) >= 3, null, {
    timeout: 20_000,
  });
  assert.equal(await entry.getAttribute("data-state"), "pending");
  assert.equal(browser.frames.sent.length, 0, "nothing was sent while down");
  mkdirSync(OUT_DIR, { recursive: true });
  await page.screenshot({ path: join(OUT_DIR, "desktop-offline.png") });

  const second = await startGateway(gateway.addr);
  assert.equal(second.addr, gateway.addr);
  await waitForStatus(page, "connected", RESTART_WAIT);
  await entry.and(page.locator('[data-state="echoed"]')).waitFor({ timeout: 10_000 });
  assert.match(await entry.locator(".meta").innerText(), /echoed · RTT \d/);

  const sent = browser.frames.sent.map((f) => JSON.parse(f));
  assert.deepEqual(sent.map((m) => [m.type, m.id, m.text]), [["chat", 1, "typed while the gateway was down"]]);
  const c = await counters(page);
  assert.deepEqual([c.sent, c.echoes, c.pending], [1, 1, 0]);
  assert.equal(await page.locator("#send-hint").innerText(), "", "the queued notice is gone");
  // The new gateway's pushes flow again.
  const pushesBefore = c.pushes;
  await page.waitForFunction((n) => Number(document.getElementById("count-pushes").textContent) >= n + 2, pushesBefore);
  assert.deepEqual(browser.unexpectedProblems(), []);
});

test("when the gateway drains, the page shows the 1001 close and reconnects to its successor", TIMEOUT, async (t) => {
  const { gateway, browser, page, startGateway } = await setup(t, { name: "drain" });
  await page.goto(gateway.url(FAST_RECONNECT));
  await waitForStatus(page, "connected");
  await typeAndSend(page, "before the drain");
  await chatEntry(page, "before the drain").and(page.locator('[data-state="echoed"]')).waitFor();

  // SIGTERM: the gateway closes every socket with 1001 "going away", refuses new upgrades with 503
  // until its connections are gone, then exits.
  const exited = gateway.stop("SIGTERM");
  const notice = page.locator('.entry-system[data-code="1001"]');
  await notice.waitFor({ timeout: 10_000 });
  assert.match(await notice.innerText(), /going away/);
  assert.notEqual(await page.locator("#status").getAttribute("data-state"), "connected");
  // The reason stays in the status line while the page retries.
  assert.match(await statusText(page), /^Closed: 1001 going away · (reconnecting|connecting)/);
  assert.equal(await page.locator("#status").getAttribute("data-close-code"), "1001");
  const { code } = await exited;
  assert.equal(code, 0, "the draining gateway exits cleanly once the page has let go");

  const second = await startGateway(gateway.addr);
  await waitForStatus(page, "connected", RESTART_WAIT);
  assert.equal(await statusText(page), "Connected");
  await typeAndSend(page, "after the drain");
  await chatEntry(page, "after the drain").and(page.locator('[data-state="echoed"]')).waitFor();
  const c = await counters(page);
  assert.deepEqual([c.sent, c.echoes, c.pending], [2, 2, 0]);
  assert.ok(second.running);
  assert.deepEqual(browser.unexpectedProblems(), []);
});

test("after a drain the page waits a random part of the 5 s drain window, counted down in the status", TIMEOUT, async (t) => {
  const { gateway, browser, page, startGateway } = await setup(t, { name: "drain-jitter" });
  // The page's one random draw lands at 90 % of the window: 4.5 s, where the backoff after a blip
  // would wait 0.2 s at most (?backoff=200). Only the drain window is left at its default.
  await page.addInitScript(() => {
    Math.random = () => 0.9;
  });
  await page.goto(gateway.url("/?backoff=200&backoffmax=2000"));
  await waitForStatus(page, "connected");

  const exited = gateway.stop("SIGTERM");
  await page.locator('.entry-system[data-code="1001"]').waitFor({ timeout: 10_000 });
  const closedAt = Date.now();
  assert.match(await waitForStatus(page, "reconnecting"), /^Closed: 1001 going away · reconnecting in [45] s$/);
  // The countdown runs down to the attempt.
  await page.waitForFunction(() => /^ in 0\.\d s$/.test(document.getElementById("status-countdown").textContent));
  assert.equal((await exited).code, 0);
  await startGateway(gateway.addr);

  await waitForStatus(page, "connected", RESTART_WAIT);
  const waited = Date.now() - closedAt;
  assert.ok(waited >= 4_000, `reconnected ${waited} ms after the 1001, before the 4.5 s wait was over`);
  assert.equal(await statusText(page), "Connected");
  assert.deepEqual(browser.unexpectedProblems(), []);
});
