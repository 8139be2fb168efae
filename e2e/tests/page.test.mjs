// sidestream's page in headless Chromium against the real gateway and its embedded component.
// Run by scripts/test-e2e.sh (which installs Chromium and builds nothing: build first).

import assert from "node:assert/strict";
import { test } from "node:test";
import { DESKTOP, PHONE } from "../lib/browser.mjs";
import { setup } from "../lib/fixture.mjs";
import {
  chartInk, chatEntry, counters, screenshot, statusText, typeAndSend, waitForCount, waitForInk, waitForStatus,
} from "../lib/page.mjs";

const TIMEOUT = { timeout: 60_000 };

test("the page loads with no console errors or failed requests and connects", TIMEOUT, async (t) => {
  const { gateway, browser, page } = await setup(t, { name: "load" });

  const response = await page.goto(gateway.url("/"));
  assert.equal(response.status(), 200);
  assert.match(response.headers()["content-security-policy"] ?? "", /script-src 'self'/);
  assert.equal(await page.title(), "sidestream · live stream");

  await waitForStatus(page, "connected");
  assert.equal(await statusText(page), "Connected");
  assert.equal(await page.locator("#status").getAttribute("aria-live"), "polite");
  assert.equal(await page.locator("#endpoint").innerText(), `ws://${gateway.addr}/ws`);

  // Let a few pushes render (log, chart, counters) before judging that nothing went wrong.
  await waitForCount(page, ".entry-push", 3);
  assert.deepEqual(browser.problems, []);
});

test("a message typed with the keyboard is sent as JSON and its echo shows the RTT", TIMEOUT, async (t) => {
  const { gateway, browser, page } = await setup(t, { name: "echo" });
  await page.goto(gateway.url("/"));
  await waitForStatus(page, "connected");

  // The header's app switch is one tab stop; the message box is the next thing Tab reaches. Enter sends.
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement?.id), "app-ws");
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement?.id), "message");
  const before = Date.now();
  await typeAndSend(page, "hello from the e2e test");

  const entry = chatEntry(page, "hello from the e2e test");
  await entry.and(page.locator('[data-state="echoed"]')).waitFor({ timeout: 10_000 });
  const rtt = Number(await entry.getAttribute("data-rtt"));
  assert.ok(rtt >= 0 && rtt < 5_000, `RTT ${rtt} ms`);
  assert.match(await entry.locator(".meta").innerText(), /echoed · RTT \d+(\.\d)? ms/);
  assert.match(await page.locator("#last-rtt").innerText(), /^\d+(\.\d)? ms$/);

  const sent = browser.frames.sent.map((f) => JSON.parse(f));
  assert.equal(sent.length, 1);
  assert.deepEqual(Object.keys(sent[0]).sort(), ["id", "sent", "text", "type"]);
  assert.equal(sent[0].type, "chat");
  assert.equal(sent[0].id, 1);
  assert.equal(sent[0].text, "hello from the e2e test");
  assert.ok(sent[0].sent >= before - 1000 && sent[0].sent <= Date.now(), `sent=${sent[0].sent}`);
  // The gateway echoes the frame unchanged.
  assert.ok(browser.frames.received.includes(browser.frames.sent[0]));

  const c = await counters(page);
  assert.equal(c.sent, 1);
  assert.equal(c.echoes, 1);
  assert.equal(c.pending, 0);
  assert.equal(await page.getByRole("textbox", { name: "Message" }).inputValue(), "", "the box is cleared");
  assert.equal(await page.evaluate(() => document.activeElement?.id), "message", "focus stays in the box");
  assert.deepEqual(browser.problems, []);
});

test("pushes appear in the log, on the counters and on the chart", TIMEOUT, async (t) => {
  const { gateway, browser, page } = await setup(t, { name: "push" });

  // Control: with pushes off (the ?ws= override points at /ws?push=off) the chart has no line at all,
  // so the pixel count below can fail.
  await page.goto(gateway.url(`/?ws=${encodeURIComponent(`ws://${gateway.addr}/ws?push=off`)}`));
  await waitForStatus(page, "connected");
  await page.waitForFunction(() => document.getElementById("chart").dataset.drawn === "0");
  const empty = await chartInk(page);
  assert.equal(empty.pixels, 0, "no series ink without pushes");

  await page.goto(gateway.url("/"));
  await waitForStatus(page, "connected");
  await waitForCount(page, ".entry-push", 6);
  await page.waitForFunction(() => Number(document.getElementById("chart").dataset.drawn) >= 6);

  const ink = await chartInk(page);
  assert.ok(ink.pixels >= 300, `series pixels on the chart: ${ink.pixels}`);
  assert.ok(ink.columns >= 8, `the line spans ${ink.columns} pixel columns`);

  // Newest first, in the order the gateway numbered them, each with its value and a local time. Read
  // in one go with the "latest" value: pushes keep coming, and one that landed between two reads
  // made them disagree (seen under load).
  const { pushes, latest } = await page.evaluate(() => ({
    pushes: [...document.querySelectorAll(".entry-push")].map((el) => ({
      seq: Number(el.dataset.seq),
      value: el.querySelector(".value").textContent,
      time: el.querySelector("time").textContent,
    })),
    latest: document.getElementById("latest-value").innerText,
  }));
  for (const p of pushes) {
    assert.match(p.value, /^0\.\d{4}$|^1\.0000$/);
    assert.match(p.time, /^\d\d:\d\d:\d\d\.\d{3}$/);
  }
  for (let i = 1; i < pushes.length; i++) assert.ok(pushes[i - 1].seq > pushes[i].seq, "newest first");
  assert.equal(latest, pushes[0].value);

  const c = await counters(page);
  assert.ok(c.pushes >= 6, `pushes counter ${c.pushes}`);
  assert.ok(c.pushRate > 0, `pushes/s ${c.pushRate}`);
  assert.deepEqual(browser.problems, []);
});

test("the log keeps at most 500 entries, newest first", TIMEOUT, async (t) => {
  const { gateway, browser, page } = await setup(t, { name: "cap" });
  await page.goto(gateway.url(`/?ws=${encodeURIComponent(`ws://${gateway.addr}/ws?push=off`)}`));
  await waitForStatus(page, "connected");

  await page.evaluate(() => {
    const box = document.getElementById("message");
    for (let i = 1; i <= 520; i++) {
      box.value = `message ${i}`;
      document.getElementById("send-form").requestSubmit();
    }
  });
  await page.waitForFunction(() => document.getElementById("count-echoes").textContent === "520", null, {
    timeout: 20_000,
  });
  assert.equal(await page.locator("#log > li").count(), 500);
  assert.equal(await page.locator("#log > li .text").first().innerText(), "message 520");
  assert.equal(await page.locator("#log > li .text").last().innerText(), "message 21");
  assert.deepEqual(browser.problems, []);
});

test("screenshots of the connected page on a desktop, light and dark", TIMEOUT, async (t) => {
  const { gateway, browser, page } = await setup(t, { name: "shot-desktop", browser: DESKTOP });
  await page.goto(gateway.url("/"));
  await waitForStatus(page, "connected");
  await typeAndSend(page, "Hello from the browser test");
  await chatEntry(page, "Hello from the browser test").and(page.locator('[data-state="echoed"]')).waitFor();
  // A few seconds of pushes, so the chart shows a stretch of line rather than a blip.
  await waitForCount(page, ".entry-push", 24);
  await typeAndSend(page, "Every message comes back with its round-trip time");
  await chatEntry(page, "round-trip time").and(page.locator('[data-state="echoed"]')).waitFor();
  await waitForCount(page, ".entry-push", 28);
  await screenshot(page, "desktop");

  // Switching the system to dark mode recolours the page and redraws the chart in the dark palette.
  const light = await chartInk(page);
  await page.emulateMedia({ colorScheme: "dark" });
  const dark = await waitForInk(page, (ink) => ink.color !== light.color && ink.pixels >= 300);
  assert.ok(dark.columns >= 8, `the dark line spans ${dark.columns} pixel columns`);
  await screenshot(page, "desktop-dark");
  assert.deepEqual(browser.problems, []);
});

test("screenshot of the connected page on a phone", TIMEOUT, async (t) => {
  const { gateway, browser, page } = await setup(t, { name: "shot-phone", browser: PHONE });
  await page.goto(gateway.url("/"));
  await waitForStatus(page, "connected");
  assert.equal(await page.evaluate(() => devicePixelRatio), PHONE.deviceScaleFactor);
  await typeAndSend(page, "Hello from a phone");
  await chatEntry(page, "Hello from a phone").and(page.locator('[data-state="echoed"]')).waitFor();
  await waitForCount(page, ".entry-push", 12);
  await screenshot(page, "phone");
  await screenshot(page, "phone-full", { fullPage: true });
  assert.deepEqual(browser.problems, []);
});

test("the chart follows a resize of the window", TIMEOUT, async (t) => {
  const { gateway, page } = await setup(t, { name: "resize" });
  await page.goto(gateway.url("/"));
  await waitForStatus(page, "connected");
  await waitForCount(page, ".entry-push", 2);
  const wide = await page.evaluate(() => document.getElementById("chart").width);
  await page.setViewportSize({ width: 600, height: 800 });
  await page.waitForFunction((w) => document.getElementById("chart").width !== w, wide);
  const narrow = await page.evaluate(() => {
    const c = document.getElementById("chart");
    return { width: c.width, css: c.getBoundingClientRect().width };
  });
  assert.equal(narrow.width, Math.round(narrow.css));
  assert.ok(narrow.width < wide, `${narrow.width} < ${wide}`);
  // Setting the canvas's width clears it; the redraw comes with the next animation frame.
  const ink = await waitForInk(page, (ink) => ink.pixels > 0);
  assert.ok(ink.pixels > 0, "the line is redrawn at the new size");
});
