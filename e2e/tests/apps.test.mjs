// The page's two apps: the gateway's built-in /ws (pushes, echoes unchanged) and the component's /echo
// (numbered echoes, no pushes), switched in the header and remembered in the URL (?app=echo).

import assert from "node:assert/strict";
import { test } from "node:test";
import { setup } from "../lib/fixture.mjs";
import {
  BUILT_IN, COMPONENT_ECHO, chartInk, chooseApp, chosenApp, counters, screenshot, statusText, typeAndSend,
  waitForCount, waitForEchoed, waitForStatus,
} from "../lib/page.mjs";

const TIMEOUT = { timeout: 90_000 };
/**
 * How long the page watches /echo to see that nothing is pushed: ten times the gateway's --push-max
 * in these tests (400 ms, see gateway.mjs), so /ws would have pushed several times over. Asserting
 * that something does not happen takes a window; nothing waits on it for synchronisation.
 */
const QUIET_MS = 4_000;
const FAST_RECONNECT = "backoff=200&backoffmax=2000&drainwindow=300";

/** The text frames the page received on /echo, parsed: each must be an echo frame. */
function echoFrames(browser) {
  return browser.frames.received.map((f) => JSON.parse(f));
}

/** Polls the page for QUIET_MS from `since` (epoch ms); fails as soon as a push shows up. */
async function assertNoPushesFor(page, since) {
  const remaining = Math.max(0, since + QUIET_MS - Date.now());
  const pushed = await page
    .waitForFunction(
      // The counters start over with each app: any push on this one shows here.
      () => Number(document.getElementById("count-pushes").textContent) > 0,
      null,
      { timeout: remaining, polling: 50 },
    )
    .then(() => true, () => false);
  assert.equal(pushed, false, "a push arrived on /echo");
}

test("on /echo a typed message comes back as echo #1 with its RTT, the next as #2, and nothing is pushed", TIMEOUT, async (t) => {
  const { gateway, browser, page } = await setup(t, { name: "echo-app" });
  await page.goto(gateway.url("/?app=echo"));
  await waitForStatus(page, "connected");
  const connectedAt = Date.now();
  assert.equal(await page.locator("#endpoint").innerText(), `ws://${gateway.addr}/echo`);

  await typeAndSend(page, "first over /echo");
  const first = await waitForEchoed(page, "first over /echo");
  assert.equal(await first.getAttribute("data-n"), "1");
  assert.match(await first.locator(".meta").innerText(), /^echo #1 · RTT \d+(\.\d)? ms$/);
  const rtt = Number(await first.getAttribute("data-rtt"));
  assert.ok(rtt >= 0 && rtt < 5_000, `RTT ${rtt} ms`);
  assert.match(await page.locator("#last-rtt").innerText(), /^\d+(\.\d)? ms$/);

  await typeAndSend(page, "second over /echo");
  const second = await waitForEchoed(page, "second over /echo");
  assert.match(await second.locator(".meta").innerText(), /^echo #2 · RTT \d+(\.\d)? ms$/);

  // On the wire: /echo numbers each message and carries it back whole, as text.
  assert.deepEqual(echoFrames(browser), browser.frames.sent.map((text, i) => ({ type: "echo", n: i + 1, text })));
  assert.deepEqual(JSON.parse(browser.frames.sent[1]).text, "second over /echo");

  await assertNoPushesFor(page, connectedAt);
  assert.equal(await page.locator(".entry-push").count(), 0);
  assert.equal(browser.frames.received.length, 2, "nothing but the two echoes came");
  const c = await counters(page);
  assert.deepEqual([c.sent, c.echoes, c.pushes, c.pushRate, c.pending], [2, 2, 0, 0, 0]);
  // An honest empty chart: drawn, with no line, saying why.
  const chart = page.locator("#chart");
  assert.equal(await chart.getAttribute("data-points"), "0");
  assert.equal(await chart.getAttribute("data-message"), `No pushes: ${COMPONENT_ECHO} only answers what you send`);
  assert.match(await chart.getAttribute("aria-label"), /pushes nothing/);
  assert.equal((await chartInk(page)).pixels, 0);
  assert.equal(await page.locator("#latest-value").innerText(), "–");
  assert.deepEqual(browser.sockets, [`ws://${gateway.addr}/echo`]);
  assert.deepEqual(browser.problems, []);
});

test("switching from /ws to /echo and back: each shows its own behaviour and the log keeps its history", TIMEOUT, async (t) => {
  const { gateway, browser, page } = await setup(t, { name: "switch" });
  const ws = `ws://${gateway.addr}/ws`;
  const echo = `ws://${gateway.addr}/echo`;
  await page.goto(gateway.url("/"));
  await waitForStatus(page, "connected");
  assert.equal(await chosenApp(page), BUILT_IN);
  assert.equal(await page.getByRole("group", { name: "App" }).count(), 1, "the switch is a labelled group");
  await waitForCount(page, ".entry-push", 2);
  await typeAndSend(page, "said on /ws");
  const onWs = await waitForEchoed(page, "said on /ws");
  assert.match(await onWs.locator(".meta").innerText(), /^echoed · RTT /);
  const entriesOnWs = await page.locator("#log > li").count();

  // With the mouse, to /echo.
  await chooseApp(page, COMPONENT_ECHO);
  assert.equal(new URL(page.url()).search, "?app=echo", "the URL names the app, so a copied link opens it");
  assert.equal(await page.locator("#endpoint").innerText(), echo);
  await waitForStatus(page, "connected");
  const switchedAt = Date.now();
  const marker = page.locator('.entry-switch[data-switch="echo"]');
  assert.equal(await marker.locator(".text").innerText(), `Switched from ${BUILT_IN} to ${COMPONENT_ECHO}`);
  // The old socket was closed with 1000: the page says so, and so does the gateway.
  await page.locator('.entry-switch[data-switch="echo"][data-code]').waitFor();
  assert.equal(await marker.locator(".meta").innerText(), `${ws} closed: 1000 switching app`);
  assert.deepEqual(await gateway.closes(), { "client 1000": 1 });
  // History kept: everything from /ws is still in the log, below the marker.
  assert.ok((await page.locator("#log > li").count()) > entriesOnWs, "nothing was dropped");
  assert.equal(await onWs.count(), 1);
  assert.ok((await page.locator(".entry-push").count()) >= 2, "the pushes from /ws are still listed");
  const c0 = await counters(page);
  assert.deepEqual([c0.sent, c0.echoes, c0.pushes], [0, 0, 0], "the counters are the new app's");

  await typeAndSend(page, "said on /echo");
  const onEcho = await waitForEchoed(page, "said on /echo");
  assert.match(await onEcho.locator(".meta").innerText(), /^echo #1 · RTT \d/);
  const pushesBefore = await page.locator(".entry-push").count();
  await assertNoPushesFor(page, switchedAt);
  assert.equal(await page.locator(".entry-push").count(), pushesBefore, "no new push entries on /echo");
  assert.equal(await page.locator("#chart").getAttribute("data-points"), "0", "the /ws line is gone from the chart");

  // With the keyboard, back to /ws: the switch is one radio group, arrows move the choice.
  await page.getByRole("radio", { name: COMPONENT_ECHO }).focus();
  await page.keyboard.press("ArrowLeft");
  assert.equal(await chosenApp(page), BUILT_IN);
  assert.equal(new URL(page.url()).search, "", "the default app keeps the plain link");
  assert.equal(await page.locator("#endpoint").innerText(), ws);
  await waitForStatus(page, "connected");
  await page.locator('.entry-switch[data-switch="ws"][data-code="1000"]').waitFor();
  assert.equal(
    await page.locator('.entry-switch[data-switch="ws"] .meta').innerText(),
    `${echo} closed: 1000 switching app`,
  );
  await page.waitForFunction(() => Number(document.getElementById("count-pushes").textContent) >= 2);
  await page.waitForFunction(() => Number(document.getElementById("chart").dataset.points) >= 2);
  await typeAndSend(page, "back on /ws");
  assert.match(await (await waitForEchoed(page, "back on /ws")).locator(".meta").innerText(), /^echoed · RTT /);

  // Both switch markers and both apps' messages, newest first.
  const kinds = await page.locator("#log > li").evaluateAll((els) =>
    els.filter((el) => el.dataset.switch || el.dataset.kind === "chat")
      .map((el) => el.dataset.switch ?? el.querySelector(".text").textContent));
  assert.deepEqual(kinds, ["back on /ws", "ws", "said on /echo", "echo", "said on /ws"]);
  assert.deepEqual(browser.sockets, [ws, echo, ws]);
  assert.deepEqual(await gateway.closes(), { "client 1000": 2 });
  assert.deepEqual(browser.problems, []);
});

test("?app=echo in the URL opens /echo directly, and a reload stays there", TIMEOUT, async (t) => {
  const { gateway, browser, page } = await setup(t, { name: "app-param" });
  await page.goto(gateway.url("/?app=echo"));
  await waitForStatus(page, "connected");
  assert.equal(await chosenApp(page), COMPONENT_ECHO);
  assert.equal(await page.locator("#endpoint").innerText(), `ws://${gateway.addr}/echo`);
  assert.match(await page.locator(".entry-system").first().innerText(), /Connected to ws:\/\/.*\/echo$/);
  assert.equal(await page.locator(".entry-switch").count(), 0, "opening an app is not a switch");

  await page.reload();
  await waitForStatus(page, "connected");
  assert.equal(await chosenApp(page), COMPONENT_ECHO);
  assert.deepEqual(browser.sockets, [`ws://${gateway.addr}/echo`, `ws://${gateway.addr}/echo`]);

  // A value that names no app: said so, and the built-in app opens.
  await page.goto(gateway.url("/?app=chat"));
  await waitForStatus(page, "connected");
  assert.equal(await chosenApp(page), BUILT_IN);
  assert.equal(
    await page.locator('.entry-system[data-tone="warn"] .body').innerText(),
    `Ignored ?app=chat: not one of ws, echo; showing ${BUILT_IN}`,
  );
  assert.equal(browser.sockets.at(-1), `ws://${gateway.addr}/ws`);
  assert.deepEqual(browser.problems, []);
});

test("when the gateway drains, /echo shows the 1001 and reconnects, counting from 1 again", TIMEOUT, async (t) => {
  const { gateway, browser, page, startGateway } = await setup(t, { name: "echo-drain" });
  await page.goto(gateway.url(`/?app=echo&${FAST_RECONNECT}`));
  await waitForStatus(page, "connected");
  await typeAndSend(page, "before the drain");
  await waitForEchoed(page, "before the drain");

  const exited = gateway.stop("SIGTERM");
  const notice = page.locator('.entry-system[data-code="1001"]');
  await notice.waitFor({ timeout: 10_000 });
  assert.match(await notice.innerText(), /going away/);
  assert.match(await statusText(page), /^Closed: 1001 going away · (reconnecting|connecting)/);
  assert.equal((await exited).code, 0, "the draining gateway exits cleanly once the page has let go");

  await startGateway(gateway.addr);
  await waitForStatus(page, "connected", 30_000);
  assert.equal(await chosenApp(page), COMPONENT_ECHO, "still on /echo after the reconnect");
  await typeAndSend(page, "after the drain");
  const after = await waitForEchoed(page, "after the drain");
  // /echo counts per connection: the new one starts over.
  assert.match(await after.locator(".meta").innerText(), /^echo #1 · RTT \d/);
  assert.deepEqual(new Set(browser.sockets), new Set([`ws://${gateway.addr}/echo`]));
  const c = await counters(page);
  assert.deepEqual([c.sent, c.echoes, c.pushes, c.pending], [2, 2, 0, 0]);
  assert.deepEqual(browser.unexpectedProblems(), []);
});

test("screenshot of the page on /echo after a switch (desktop)", TIMEOUT, async (t) => {
  const { gateway, browser, page } = await setup(t, { name: "shot-echo" });
  await page.goto(gateway.url("/"));
  await waitForStatus(page, "connected");
  await waitForCount(page, ".entry-push", 8);
  await typeAndSend(page, "Hello, built-in stream");
  await waitForEchoed(page, "Hello, built-in stream");
  await chooseApp(page, COMPONENT_ECHO);
  await waitForStatus(page, "connected");
  await page.locator(".entry-switch[data-code]").waitFor();
  await typeAndSend(page, "Hello, component");
  await waitForEchoed(page, "Hello, component");
  await typeAndSend(page, "Every echo is numbered and timed");
  await waitForEchoed(page, "numbered and timed");
  await page.waitForFunction(() => document.getElementById("chart").dataset.message !== "");
  // The empty chart draws its message in the axis-label colour: ink in the plot's middle band.
  const text = await page.evaluate(() => {
    const c = document.getElementById("chart");
    const hex = getComputedStyle(c).getPropertyValue("--chart-text").trim();
    const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
    const { width, height } = c;
    const data = c.getContext("2d").getImageData(60, height / 2 - 30, width - 80, 60).data;
    let n = 0;
    for (let i = 0; i < data.length; i += 4) {
      if (data[i + 3] > 200 && Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b) < 60) n++;
    }
    return n;
  });
  assert.ok(text > 50, `the empty chart's message is drawn (${text} text pixels)`);
  await screenshot(page, "desktop-echo");
  assert.deepEqual(browser.problems, []);
});
