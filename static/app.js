// sidestream's page: a live view of a WebSocket app, the gateway's built-in stream or the component's
// echo app, switched in the header.
//
// Connects to ws(s)://<this page's host>/ws, or /echo. Query parameters:
//   ?app=echo       open the component's /echo app (default: the built-in /ws); the switch keeps it
//                   current, so a copied link opens the same app (see apps.js)
//   ?ws=URL         connect the chosen app there instead: a path, or a URL on this page's own origin
//                   (see endpoint.js); mostly for tests, and dropped by the switch
//   ?backoff=MS     first reconnect delay (default 500; the e2e tests use 200 to stay fast)
//   ?backoffmax=MS  ceiling of the reconnect delay (default and upper limit 30000)
//   ?drainwindow=MS window of the random wait after a Close 1001 (default 5000, the gateway's
//                   default --drain-spread; 0 to 30000)
//
// What it sends and receives is typed in protocol.js: it sends chat frames; /ws echoes them unchanged
// and pushes values at random times, /echo answers each with an echo frame that numbers it and carries
// it whole as text, and pushes nothing. Either way the echo brings the id back and the round-trip time
// is measured locally.
//
// The log is the page's history and outlives a switch (which it marks); the chart and the counters
// describe the app in use and start over with it.
//
// Beside it the Room panel (room-panel.js) is in the component's /room on a socket of its own, with
// the same reconnect knobs: ?room= and ?name= choose where and as whom.

/** @import { App } from "./apps.js" */
/** @import { ChatFrame, PushFrame } from "./protocol.js" */
/** @import { CloseDetail, StateDetail } from "./connection.js" */
import { APPS, hrefForApp, startingPoint } from "./apps.js";
import { Connection, DRAIN_WINDOW_MS, closeText, countdownText } from "./connection.js";
import { $, LOG_LIMIT } from "./dom.js";
import { socketUrl } from "./endpoint.js";
import { LiveChart } from "./chart.js";
import { pendingFor, readFrame } from "./protocol.js";
import { startRoomPanel } from "./room-panel.js";

/** Messages typed while offline wait here; past this the send box refuses more (and says so). */
const QUEUE_LIMIT = 100;
/** Pushes per second is averaged over this window. */
const RATE_WINDOW_MS = 10_000;

/**
 * A message the user typed, from the send box to its echo.
 * @typedef {object} Outgoing
 * @property {number} id
 * @property {string} text
 * @property {"pending" | "sent" | "echoed"} state pending: waits for a socket; sent: waits for its echo
 * @property {boolean} transmitted handed to a socket at least once (counted in Sent once)
 * @property {number} sentWall epoch ms of the latest hand-over, 0 before the first
 * @property {number} sentPerf performance.now() of the latest hand-over, for the RTT
 * @property {{ li: HTMLLIElement, meta: HTMLElement } | null} view its log entry
 */

/** @typedef {"push" | "chat" | "echo" | "system"} EntryKind */
/** @typedef {"ok" | "info" | "warn" | "error"} Tone */

const el = {
  status: $("status", HTMLElement),
  statusText: $("status-text", HTMLElement),
  countdown: $("status-countdown", HTMLElement),
  reconnectNow: $("reconnect-now", HTMLButtonElement),
  endpoint: $("endpoint", HTMLElement),
  form: $("send-form", HTMLFormElement),
  input: $("message", HTMLInputElement),
  hint: $("send-hint", HTMLElement),
  log: $("log", HTMLOListElement),
  logEmpty: $("log-empty", HTMLElement),
  clear: $("clear-log", HTMLButtonElement),
  latest: $("latest-value", HTMLElement),
  sent: $("count-sent", HTMLElement),
  echoes: $("count-echoes", HTMLElement),
  pushes: $("count-pushes", HTMLElement),
  rate: $("push-rate", HTMLElement),
  rtt: $("last-rtt", HTMLElement),
  pending: $("count-pending", HTMLElement),
  pendingStat: $("stat-pending", HTMLElement),
  announcer: $("announcer", HTMLElement),
  chart: $("chart", HTMLCanvasElement),
  appRadios: { ws: $("app-ws", HTMLInputElement), echo: $("app-echo", HTMLInputElement) },
};

const params = new URLSearchParams(location.search);
const start = startingPoint(location.href);
/** The app on screen: the one the socket is open, or being opened, to. */
let app = start.app;
/** The reconnect knobs, the same for the stream's socket and the room's. */
const backoff = {
  baseMs: clampParam("backoff", 500, 50, 30_000),
  maxMs: clampParam("backoffmax", 30_000, 50, 30_000),
  drainWindowMs: clampParam("drainwindow", DRAIN_WINDOW_MS, 0, 30_000),
};
const connection = new Connection(start.url, backoff);
const chart = new LiveChart(el.chart);

const counts = { sent: 0, echoes: 0, pushes: 0 };
/** @type {number[]} push arrival times (performance.now()) inside RATE_WINDOW_MS */
const pushTimes = [];
let connectedAt = 0;
let nextId = 1;
/** @type {Outgoing[]} typed but not yet handed to an open socket, oldest first */
const queue = [];
/** @type {Map<number, Outgoing>} on the wire, waiting for their echo, by id */
const inflight = new Map();
let reconnectUntil = 0;

const timeFormat = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit", minute: "2-digit", second: "2-digit", fractionalSecondDigits: 3, hour12: false,
});

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

// ---------------------------------------------------------------- log

/**
 * @param {EntryKind} kind
 * @param {Date} time
 */
function addEntry(kind, time = new Date()) {
  const li = document.createElement("li");
  li.className = `entry entry-${kind}`;
  li.dataset.kind = kind;
  const stamp = document.createElement("time");
  stamp.dateTime = time.toISOString();
  stamp.textContent = timeFormat.format(time);
  const tag = document.createElement("span");
  tag.className = "tag";
  tag.textContent = { push: "push", chat: "you", echo: "echo", system: "info" }[kind];
  const body = document.createElement("span");
  body.className = "body";
  li.append(stamp, tag, body);
  el.log.prepend(li);
  while (el.log.childElementCount > LOG_LIMIT) el.log.lastElementChild?.remove();
  el.logEmpty.hidden = true;
  return { li, body, tag };
}

/**
 * @param {string} text
 * @param {Tone} tone
 * @param {Record<string, string | number>} extra more data- attributes on the entry
 */
function logSystem(text, tone = "info", extra = {}) {
  const { li, body, tag } = addEntry("system");
  li.dataset.tone = tone;
  tag.textContent = { ok: "info", info: "info", warn: "warn", error: "error" }[tone];
  for (const [k, v] of Object.entries(extra)) li.dataset[k] = String(v);
  body.textContent = text;
}

/** @param {PushFrame} push */
function logPush(push) {
  const { li, body } = addEntry("push");
  li.dataset.seq = String(push.seq);
  const seq = document.createElement("span");
  seq.className = "seq";
  seq.textContent = `#${push.seq}`;
  const bar = document.createElement("span");
  bar.className = "bar";
  bar.setAttribute("aria-hidden", "true");
  bar.style.setProperty("--v", String(push.value));
  const value = document.createElement("span");
  value.className = "value";
  value.textContent = push.value.toFixed(4);
  body.append(seq, bar, value);
  li.title = `server time ${push.ts}`;
}

/** @param {Outgoing} msg */
function logChat(msg) {
  const { li, body } = addEntry("chat");
  li.dataset.id = String(msg.id);
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = msg.text;
  const meta = document.createElement("span");
  meta.className = "meta";
  body.append(text, meta);
  msg.view = { li, meta };
  setChatState(msg, msg.state);
}

/**
 * @param {Outgoing} msg
 * @param {"pending" | "sent" | "echoed"} state
 * @param {number} rttMs for "echoed"
 */
function setChatState(msg, state, rttMs = 0) {
  msg.state = state;
  if (!msg.view) return;
  const { li, meta } = msg.view;
  li.dataset.state = state;
  if (state === "pending") meta.textContent = "pending · sends on reconnect";
  else if (state === "sent") meta.textContent = "sent · waiting for echo";
  else {
    li.dataset.rtt = rttMs.toFixed(1);
    meta.textContent = `echoed · RTT ${formatMs(rttMs)}`;
  }
}

/**
 * @param {Outgoing} msg
 * @param {number} rttMs
 * @param {number | null} n /echo's count of the message; null from /ws, which counts nothing
 */
function setEchoed(msg, rttMs, n) {
  setChatState(msg, "echoed", rttMs);
  if (!msg.view || n === null) return;
  msg.view.li.dataset.n = String(n);
  msg.view.meta.textContent = `echo #${n} · RTT ${formatMs(rttMs)}`;
}

/**
 * An echo of nothing the page is waiting for: something sent raw, a binary frame.
 * @param {string} text
 * @param {number | null} n /echo's count, when it gave one
 */
function logEcho(text, n = null) {
  const { li, body } = addEntry("echo");
  if (n !== null) {
    li.dataset.n = String(n);
    const seq = document.createElement("span");
    seq.className = "seq";
    seq.textContent = `#${n}`;
    body.append(seq);
  }
  const span = document.createElement("span");
  span.className = "text";
  span.textContent = text;
  body.append(span);
}

/**
 * The line that marks a switch in the log; `meta` is filled in once the old socket has closed.
 * @param {App} from
 * @param {App} to
 */
function logSwitch(from, to) {
  const { li, body, tag } = addEntry("system");
  tag.textContent = "app";
  li.dataset.tone = "info";
  li.dataset.switch = to.id;
  li.classList.add("entry-switch");
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = `Switched from ${from.label} to ${to.label}`;
  const meta = document.createElement("span");
  meta.className = "meta";
  body.append(text, meta);
  return { li, meta };
}

/** @param {number} ms */
function formatMs(ms) {
  return ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}

// ---------------------------------------------------------------- sending

function submit() {
  const text = el.input.value.trim();
  if (text === "") {
    el.hint.textContent = "Type a message first.";
    el.input.focus();
    return;
  }
  if (!connection.connected && queue.length >= QUEUE_LIMIT) {
    el.hint.textContent = `${queue.length} messages are already waiting for the connection; try again once it is back.`;
    el.hint.dataset.tone = "warn";
    return;
  }
  /** @type {Outgoing} */
  const msg = { id: nextId++, text, state: "pending", transmitted: false, sentWall: 0, sentPerf: 0, view: null };
  logChat(msg);
  el.input.value = "";
  el.hint.textContent = "";
  delete el.hint.dataset.tone;
  if (!transmit(msg)) {
    queue.push(msg);
    el.hint.textContent = "Offline: queued, it is sent as soon as the connection is back.";
    el.hint.dataset.tone = "warn";
  }
  renderCounts();
}

/**
 * Hands one message to the socket; false when there is none open.
 * @param {Outgoing} msg
 */
function transmit(msg) {
  msg.sentWall = Date.now();
  msg.sentPerf = performance.now();
  /** @type {ChatFrame} */
  const frame = { type: "chat", id: msg.id, text: msg.text, sent: msg.sentWall };
  if (!connection.send(JSON.stringify(frame))) return false;
  if (!msg.transmitted) counts.sent += 1;
  msg.transmitted = true;
  inflight.set(msg.id, msg);
  setChatState(msg, "sent");
  return true;
}

function flushQueue() {
  while (queue.length > 0 && transmit(queue[0])) queue.shift();
  if (queue.length === 0 && el.hint.dataset.tone === "warn") {
    el.hint.textContent = "";
    delete el.hint.dataset.tone;
  }
  renderCounts();
}

/** A socket closed under messages still waiting for their echo: send them again on the next one. */
function requeueInflight() {
  const lost = [...inflight.values()].sort((a, b) => a.id - b.id);
  inflight.clear();
  for (const msg of lost) setChatState(msg, "pending");
  queue.unshift(...lost);
  renderCounts();
}

// ---------------------------------------------------------------- receiving

/** @param {string | ArrayBuffer} data */
function onMessage(data) {
  if (typeof data !== "string") {
    counts.echoes += 1;
    logEcho(`binary frame, ${data.byteLength} bytes`);
    renderCounts();
    return;
  }
  const reading = readFrame(data);
  const msg = pendingFor(reading, inflight);
  if (reading.kind === "push") {
    onPush(reading.push);
  } else if (msg !== undefined) {
    inflight.delete(msg.id);
    const rtt = performance.now() - msg.sentPerf;
    counts.echoes += 1;
    el.rtt.textContent = formatMs(rtt);
    // An entry already dropped from the log (cap, Clear) is updated off-screen: re-adding it as a new
    // entry would push out more entries whose echoes are still coming, and so on.
    setEchoed(msg, rtt, reading.n);
    const as = reading.n === null ? "" : ` as echo #${reading.n}`;
    el.announcer.textContent = `Message ${msg.id} echoed${as} in ${formatMs(rtt)}`;
  } else {
    // Not a frame of the page's own: an echo of something sent raw, shown as it came.
    counts.echoes += 1;
    logEcho(reading.text, reading.n);
  }
  renderCounts();
}

/** @param {PushFrame} push */
function onPush(push) {
  const now = performance.now();
  counts.pushes += 1;
  pushTimes.push(now);
  chart.add(push.value, now);
  el.latest.textContent = push.value.toFixed(4);
  logPush(push);
}

// ---------------------------------------------------------------- status and counters

function renderCounts() {
  const now = performance.now();
  while (pushTimes.length > 0 && pushTimes[0] < now - RATE_WINDOW_MS) pushTimes.shift();
  // Over the first seconds of a connection divide by the time it has been up, not the full window.
  const span = connectedAt ? Math.min(RATE_WINDOW_MS, Math.max(1000, now - connectedAt)) : RATE_WINDOW_MS;
  setText(el.sent, String(counts.sent));
  setText(el.echoes, String(counts.echoes));
  setText(el.pushes, String(counts.pushes));
  setText(el.rate, ((pushTimes.length * 1000) / span).toFixed(1));
  setText(el.pending, String(queue.length));
  const active = queue.length > 0 ? "true" : "false";
  if (el.pendingStat.dataset.active !== active) el.pendingStat.dataset.active = active;
}

/**
 * Writes only changes: the counters tick four times a second and most of them rarely move.
 * @param {Node} node
 * @param {string} text
 */
function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

/** @param {StateDetail} detail */
function renderStatus({ state, attempt, lastClose, delayMs = 0 }) {
  el.status.dataset.state = state;
  const offline = state === "reconnecting" || (state === "connecting" && attempt > 0);
  el.input.placeholder = offline ? "Offline: messages wait in a queue…" : "Type a message…";
  el.status.dataset.attempt = String(attempt);
  if (lastClose) el.status.dataset.closeCode = String(lastClose.code);
  el.reconnectNow.hidden = state !== "reconnecting";
  // While retrying, the reason the last connection ended stays in view: a person who looks up after
  // a few failed attempts still learns what happened (a 1001 means the server went away on purpose).
  const why = lastClose ? `Closed: ${closeText(lastClose)} · ` : attempt > 0 ? "Server unreachable · " : "";
  if (state === "connecting") {
    el.statusText.textContent = attempt > 0 ? `${why}connecting (attempt ${attempt + 1})…` : "Connecting…";
  } else if (state === "connected") {
    el.statusText.textContent = "Connected";
  } else if (state === "reconnecting") {
    reconnectUntil = performance.now() + delayMs;
    el.statusText.textContent = `${why}reconnecting`;
  }
  renderCountdown();
}

/** The seconds live outside the aria-live text, so screen readers hear state changes, not a ticking clock. */
function renderCountdown() {
  const text = countdownText(connection.state, reconnectUntil, performance.now());
  if (el.countdown.textContent !== text) el.countdown.textContent = text;
}

function tick() {
  renderCounts();
  renderCountdown();
}

// ---------------------------------------------------------------- apps

/** Everything on screen that says which app is in use. */
function renderApp() {
  document.body.dataset.app = app.id;
  el.appRadios[app.id].checked = true;
  el.endpoint.textContent = connection.url;
  // An app that pushes nothing gets an empty chart that says so, not one that waits forever.
  chart.setEmptyText(app.pushes ? "Waiting for pushes…" : `No pushes: ${app.label} only answers what you send`);
  el.chart.setAttribute("aria-label", app.pushes
    ? "Line chart of the values pushed by the server over the last 60 seconds"
    : `Empty chart: ${app.label} pushes nothing, it only answers the messages you send`);
}

/** The chart and the counters start over with each app: they describe the socket in use. */
function resetStats() {
  counts.sent = 0;
  counts.echoes = 0;
  counts.pushes = 0;
  pushTimes.length = 0;
  connectedAt = 0;
  chart.clear();
  el.latest.textContent = "–";
  el.rtt.textContent = "–";
}

/**
 * Closes the socket in use (1000) and opens the other app's. The log keeps its history and marks the
 * switch; messages still waiting for an echo go out again on the new socket, counted as its own.
 * @param {App} to
 */
function switchApp(to) {
  if (to.id === app.id) return;
  const from = app;
  const fromUrl = connection.url;
  app = to;
  history.replaceState(history.state, "", hrefForApp(to, location.href));
  requeueInflight();
  for (const msg of queue) msg.transmitted = false;
  resetStats();
  const marker = logSwitch(from, to);
  const ended = connection.switchTo(socketUrl(null, location.href, to.path).url);
  renderApp();
  renderCounts();
  el.announcer.textContent = `Switched to ${to.label}`;
  ended.then((close) => {
    marker.meta.textContent = leftText(fromUrl, close);
    if (close !== null) marker.li.dataset.code = String(close.code);
  });
}

/**
 * How the switch left the old socket, for the log.
 * @param {string} url
 * @param {CloseDetail | null} close null when no socket was open or opening (between attempts)
 */
function leftText(url, close) {
  if (close === null) return `(nothing was open on ${url})`;
  if (!close.everOpened) return `(gave up connecting to ${url})`;
  return `${url} closed: ${closeText(close)}`;
}

// ---------------------------------------------------------------- wiring

connection.on("state", (e) => renderStatus(e.detail));
connection.on("open", () => {
  connectedAt = performance.now();
  logSystem(`Connected to ${connection.url}`, "ok");
  flushQueue();
});
connection.on("close", (e) => {
  const { code, reason, everOpened } = e.detail;
  connectedAt = 0;
  requeueInflight();
  if (!everOpened) return; // failed attempts show in the status line, not as a log line each
  const text = code === 1001
    ? `Server is going away (${closeText({ code, reason })}): it is restarting or shutting down. Reconnecting…`
    : `Connection closed: ${closeText({ code, reason })}. Reconnecting…`;
  logSystem(text, code === 1000 || code === 1001 ? "warn" : "error", { code });
});
connection.on("message", (e) => onMessage(e.detail.data));

el.form.addEventListener("submit", (e) => {
  e.preventDefault();
  submit();
});
el.reconnectNow.addEventListener("click", () => connection.reconnectNow());
el.clear.addEventListener("click", () => {
  el.log.replaceChildren();
  el.logEmpty.hidden = false;
  el.input.focus();
});
for (const radio of document.querySelectorAll('input[name="filter"]')) {
  if (!(radio instanceof HTMLInputElement)) continue;
  radio.addEventListener("change", () => {
    if (radio.checked) el.log.dataset.filter = radio.value;
  });
}
for (const to of Object.values(APPS)) {
  const radio = el.appRadios[to.id];
  radio.addEventListener("change", () => {
    if (radio.checked) switchApp(to);
  });
}

renderApp();
if (start.ignoredApp) {
  logSystem(`Ignored ?app=${params.get("app")}: not one of ${Object.keys(APPS).join(", ")}; showing ${app.label}`, "warn");
}
if (start.ignoredWs) {
  logSystem(`Ignored ?ws=${params.get("ws")}: not a path or a URL on this page's origin (${location.origin})`, "warn");
}
setInterval(tick, 250);
renderCounts();
connection.start();
startRoomPanel(backoff);
