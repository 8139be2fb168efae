// sidestream's page: two panels, each on a WebSocket of its own that keeps reconnecting.
// - The stream (stream-panel.js): a live view of a WebSocket app, the gateway's built-in stream or the
//   component's echo app, switched in the header.
// - The Room (room-panel.js): the component's /room chat, where ?room= and ?name= choose where and as
//   whom.
// One clock ticks for both (the counters, the countdowns), four times a second, and stops while the
// tab is hidden.
//
// Query parameters:
//   ?app=echo       open the component's /echo app (default: the built-in /ws); the switch keeps it
//                   current, so a copied link opens the same app (see apps.js)
//   ?ws=URL         connect the chosen app there instead: a path, or a URL on this page's own origin
//                   (see endpoint.js); mostly for tests, and dropped by the switch
//   ?backoff=MS     first reconnect delay (default 500; the e2e tests use 200 to stay fast)
//   ?backoffmax=MS  ceiling of the reconnect delay (default and upper limit 30000)
//   ?drainwindow=MS window of the random wait after a Close 1001 (default 5000, the gateway's
//                   default --drain-spread; 0 to 30000)
// The reconnect knobs apply to both panels' sockets.

import { APPS, startingPoint } from "./apps.js";
import { DRAIN_WINDOW_MS } from "./connection.js";
import { $, followHeight, startTicker } from "./dom.js";
import { startRoomPanel } from "./room-panel.js";
import { startStreamPanel } from "./stream-panel.js";

/** How often the counters and countdowns are brought up to date. */
const TICK_MS = 250;

const params = new URLSearchParams(location.search);

/**
 * A numeric query parameter, clamped to [min, max]; `fallback` when absent or not a number.
 * @param {string} name
 * @param {number} fallback
 * @param {number} min
 * @param {number} max
 */
function clampParam(name, fallback, min, max) {
  const n = Number(params.get(name));
  return params.has(name) && Number.isFinite(n) ? Math.min(max, Math.max(min, n)) : fallback;
}

const backoff = {
  baseMs: clampParam("backoff", 500, 50, 30_000),
  maxMs: clampParam("backoffmax", 30_000, 50, 30_000),
  drainWindowMs: clampParam("drainwindow", DRAIN_WINDOW_MS, 0, 30_000),
};
followHeight($("topbar", HTMLElement), "--topbar-height");
const start = startingPoint(location.href);
const stream = startStreamPanel(start, backoff);
if (start.ignoredApp) {
  stream.warn(`Ignored ?app=${params.get("app")}: not one of ${Object.keys(APPS).join(", ")}; showing ${start.app.label}`);
}
if (start.ignoredWs) {
  stream.warn(`Ignored ?ws=${params.get("ws")}: not a path or a URL on this page's origin (${location.origin})`);
}
const room = startRoomPanel(backoff);
startTicker(() => {
  stream.tick();
  room.tick();
}, TICK_MS);
