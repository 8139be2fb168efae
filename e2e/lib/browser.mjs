// Debian's Chromium driven by playwright-core: no browser download, a fresh profile per launch, and a
// record of everything that went wrong on the page (console errors, page errors, failed requests).

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const EXECUTABLE = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";
// Chromium as root needs --no-sandbox; the rest keeps a CI run quiet and offline: no GPU, no QUIC,
// no first-run UI, no background fetches, component updates or sync.
const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** The desktop and phone the screenshots are taken at. */
export const DESKTOP = { viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1 };
export const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 3, isMobile: true, hasTouch: true };

/**
 * Launches Chromium with a fresh user-data-dir and opens one page.
 * @param {import("playwright-core").BrowserContextOptions} options
 */
export async function launch(options = DESKTOP) {
  const userDataDir = await mkdtemp(join(tmpdir(), "sidestream-e2e-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: EXECUTABLE,
    headless: true,
    args: ARGS,
    ...options,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  /** Everything a person would see go wrong, as readable lines. */
  const problems = [];
  page.on("console", (msg) => {
    if (msg.type() !== "error") return;
    // "Failed to load resource" names no resource in its text: its location does.
    const where = msg.text().startsWith("Failed to load resource") ? ` (${msg.location().url})` : "";
    problems.push(`console error: ${msg.text()}${where}`);
  });
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  page.on("requestfailed", (req) => problems.push(`request failed: ${req.url()} (${req.failure()?.errorText})`));
  page.on("response", (res) => {
    if (res.status() >= 400) problems.push(`HTTP ${res.status()}: ${res.url()}`);
  });

  /** Text frames the page sent and received over the stream's WebSockets (/ws, /echo), in order. */
  const frames = { sent: [], received: [] };
  /** The URL of every stream WebSocket the page opened on the wire, in order (one the CSP blocked never gets here). */
  const sockets = [];
  /** The same for the Room panel's sockets to /room, kept apart: the panel joins on every load. */
  const room = { frames: { sent: [], received: [] }, sockets: [] };
  page.on("websocket", (ws) => {
    const into = new URL(ws.url()).pathname === "/room" ? room : { frames, sockets };
    into.sockets.push(ws.url());
    ws.on("framesent", (f) => into.frames.sent.push(f.payload));
    ws.on("framereceived", (f) => into.frames.received.push(f.payload));
  });

  return {
    context,
    page,
    problems,
    frames,
    sockets,
    room,
    /** Problems other than the browser reporting a WebSocket it could not open (expected while a gateway is down). */
    unexpectedProblems() {
      return problems.filter((p) => !/^console error: WebSocket connection to '.*' failed/.test(p));
    },
    async close() {
      await context.close();
      await rm(userDataDir, { recursive: true, force: true });
    },
  };
}
