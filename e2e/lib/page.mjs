// What the tests read off sidestream's page, as a person would see it. Every wait polls with a timeout.

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { OUT_DIR } from "./paths.mjs";

export const WAIT_MS = 20_000;

/** The header's app switch: the accessible names of its two options. */
export const BUILT_IN = "Built-in /ws";
export const COMPONENT_ECHO = "Component /echo";

/**
 * Waits until the status line is in `state` (connected, connecting, reconnecting); returns its text as
 * it was in that state, read in the same go: a reconnect's short wait can be over by a second read.
 */
export async function waitForStatus(page, state, timeout = WAIT_MS) {
  const handle = await page.waitForFunction(
    (s) => {
      const status = document.getElementById("status");
      return status?.dataset.state === s ? { text: status.innerText.replace(/\s+/g, " ").trim() } : false;
    },
    state,
    { timeout, polling: 50 },
  );
  return (await handle.jsonValue()).text;
}

export async function statusText(page) {
  return (await page.locator("#status").innerText()).replace(/\s+/g, " ").trim();
}

/** Waits until `selector` matches at least `count` elements; returns how many it matched. */
export async function waitForCount(page, selector, count, timeout = WAIT_MS) {
  const handle = await page.waitForFunction(
    ([sel, n]) => {
      const found = document.querySelectorAll(sel).length;
      return found >= n ? found : false;
    },
    [selector, count],
    { timeout, polling: 50 },
  );
  return handle.jsonValue();
}

/** The counters under the chart, as numbers. */
export async function counters(page) {
  return page.evaluate(() => {
    const n = (id) => Number(document.getElementById(id).textContent);
    return {
      sent: n("count-sent"),
      echoes: n("count-echoes"),
      pushes: n("count-pushes"),
      pushRate: n("push-rate"),
      pending: n("count-pending"),
    };
  });
}

/** Types into the labelled message box with the keyboard and presses Enter, like a person. */
export async function typeAndSend(page, text) {
  const box = page.getByRole("textbox", { name: "Message" });
  await box.focus();
  await page.keyboard.type(text);
  await page.keyboard.press("Enter");
}

/** The log entry of the message whose text is `text` (the newest one, if sent twice). */
export function chatEntry(page, text) {
  return page.locator(".entry-chat").filter({ has: page.locator(".text", { hasText: text }) }).first();
}

/** Waits until the message whose text is `text` shows its echo; returns its log entry. */
export async function waitForEchoed(page, text, timeout = 10_000) {
  const entry = chatEntry(page, text);
  await entry.and(page.locator('[data-state="echoed"]')).waitFor({ timeout });
  return entry;
}

/** Picks an app in the header's switch with the mouse, as a person would; `name` is BUILT_IN or COMPONENT_ECHO. */
export async function chooseApp(page, name) {
  await page.getByRole("radio", { name }).check();
}

/** Which app the switch shows as chosen (its accessible name). */
export async function chosenApp(page) {
  for (const name of [BUILT_IN, COMPONENT_ECHO]) {
    if (await page.getByRole("radio", { name }).isChecked()) return name;
  }
  return null;
}

/**
 * Reads the chart's pixels back: how many device pixels have the series colour, and in how many
 * distinct columns. Counted from the canvas itself, not from anything the page claims.
 */
export async function chartInk(page) {
  return page.evaluate(() => {
    const canvas = document.getElementById("chart");
    const hex = getComputedStyle(canvas).getPropertyValue("--chart-line").trim();
    const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex);
    if (!m) throw new Error(`--chart-line is ${JSON.stringify(hex)}, expected #rrggbb`);
    const [r, g, b] = m.slice(1).map((h) => parseInt(h, 16));
    const { width, height } = canvas;
    const data = canvas.getContext("2d").getImageData(0, 0, width, height).data;
    let pixels = 0;
    const columns = new Set();
    for (let i = 0; i < data.length; i += 4) {
      const close = Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b) < 40;
      if (close && data[i + 3] > 200) {
        pixels += 1;
        columns.add((i / 4) % width);
      }
    }
    return { color: hex.toLowerCase(), pixels, columns: columns.size, width, height };
  });
}

/** Polls `chartInk` until `accept(ink)` holds; returns that reading. */
export async function waitForInk(page, accept, timeout = WAIT_MS) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const ink = await chartInk(page);
    if (accept(ink)) return ink;
    if (Date.now() > deadline) throw new Error(`chart never matched; last reading ${JSON.stringify(ink)}`);
    await new Promise((next) => setTimeout(next, 50));
  }
}

/** Checks what makes a screenshot trustworthy, then saves it as target/e2e/<name>.png. */
export async function screenshot(page, name, { fullPage = false } = {}) {
  // Sharp on this screen: the chart's backing store is its CSS size times the pixel ratio.
  const chart = await page.evaluate(() => {
    const c = document.getElementById("chart");
    const r = c.getBoundingClientRect();
    return { width: c.width, height: c.height, css: [r.width, r.height], dpr: devicePixelRatio };
  });
  assert.equal(chart.width, Math.round(chart.css[0] * chart.dpr));
  assert.equal(chart.height, Math.round(chart.css[1] * chart.dpr));
  // Nothing sticks out sideways: no horizontal scrolling, on a phone least of all.
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - innerWidth);
  assert.ok(overflow <= 0, `page is ${overflow} px wider than the viewport`);
  mkdirSync(OUT_DIR, { recursive: true });
  await page.screenshot({ path: join(OUT_DIR, `${name}.png`), fullPage });
}

// ---------------------------------------------------------------- the Room panel

/** Waits until the Room panel has been welcomed into its room; returns the name it joined as. */
export async function waitForRoomJoined(page, timeout = WAIT_MS) {
  const handle = await page.waitForFunction(
    () => document.getElementById("room-status")?.dataset.joinedAs ?? false,
    null,
    { timeout, polling: 50 },
  );
  return handle.jsonValue();
}

/** Waits until the Room panel's own status is `state` (connected, connecting, reconnecting). */
export async function waitForRoomStatus(page, state, timeout = WAIT_MS) {
  await page.waitForFunction(
    (s) => document.getElementById("room-status")?.dataset.state === s,
    state,
    { timeout, polling: 50 },
  );
}

/** Says `text` in the room with the keyboard, through the labelled box, and Enter. */
export async function sayInRoom(page, text) {
  const box = page.getByRole("textbox", { name: "Say in the room" });
  await box.focus();
  await page.keyboard.type(text);
  await page.keyboard.press("Enter");
}

/** Waits until the room shows a message whose text is `text`. */
export async function waitForRoomMessage(page, text, timeout = WAIT_MS) {
  await page.waitForFunction(
    (t) => [...document.querySelectorAll("#room-log .room-message .text")].some((e) => e.textContent === t),
    text,
    { timeout, polling: 50 },
  );
}

/** The room's messages as the panel shows them, oldest first. */
export async function roomMessages(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll("#room-log .room-message")].map((li) => ({
      id: li.dataset.id,
      from: li.querySelector(".from")?.textContent,
      text: li.querySelector(".text")?.textContent,
      recovered: li.dataset.recovered === "true",
      mark: li.querySelector(".recovered")?.textContent ?? null,
      mine: li.classList.contains("mine"),
    })),
  );
}
