// sidestream's page: a live view of the gateway's WebSocket stream.
//
// Connects to ws(s)://<this page's host>/ws. Query parameters, mostly for tests:
//   ?ws=URL         connect there instead: a path, or a URL on this page's own origin (see endpoint.js)
//   ?backoff=MS     first reconnect delay (default 500; the e2e tests use 200 to stay fast)
//   ?backoffmax=MS  ceiling of the reconnect delay (default and upper limit 30000)
//
// What it sends: {"type":"chat","id":N,"text":"...","sent":<epoch ms>}. The gateway echoes frames
// unchanged, so the echo carries the id back and the round-trip time is measured locally.

import { Connection, describeClose } from "./connection.js";
import { socketUrl } from "./endpoint.js";
import { LiveChart } from "./chart.js";

/** The log keeps this many entries; older ones are dropped so a long-open tab stays small. */
const LOG_LIMIT = 500;
/** Messages typed while offline wait here; past this the send box refuses more (and says so). */
const QUEUE_LIMIT = 100;
/** Pushes per second is averaged over this window. */
const RATE_WINDOW_MS = 10_000;

const $ = (id) => document.getElementById(id);
const el = {
  status: $("status"),
  statusText: $("status-text"),
  countdown: $("status-countdown"),
  reconnectNow: $("reconnect-now"),
  endpoint: $("endpoint"),
  form: $("send-form"),
  input: $("message"),
  hint: $("send-hint"),
  log: $("log"),
  logEmpty: $("log-empty"),
  clear: $("clear-log"),
  latest: $("latest-value"),
  sent: $("count-sent"),
  echoes: $("count-echoes"),
  pushes: $("count-pushes"),
  rate: $("push-rate"),
  rtt: $("last-rtt"),
  pending: $("count-pending"),
  announcer: $("announcer"),
};

const params = new URLSearchParams(location.search);
const endpoint = socketUrl(params.get("ws"), location.href);
const url = endpoint.url;
const connection = new Connection(url, {
  baseMs: clampParam("backoff", 500, 50, 30_000),
  maxMs: clampParam("backoffmax", 30_000, 50, 30_000),
});
const chart = new LiveChart($("chart"));

const counts = { sent: 0, echoes: 0, pushes: 0 };
/** Push arrival times (performance.now()) inside RATE_WINDOW_MS. */
const pushTimes = [];
let connectedAt = 0;
let nextId = 1;
/** Messages typed but not yet handed to an open socket, oldest first. */
const queue = [];
/** Messages on the wire, waiting for their echo, by id. */
const inflight = new Map();
let reconnectUntil = 0;

const timeFormat = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit", minute: "2-digit", second: "2-digit", fractionalSecondDigits: 3, hour12: false,
});

function clampParam(name, fallback, min, max) {
  const n = Number(params.get(name));
  return params.has(name) && Number.isFinite(n) ? Math.min(max, Math.max(min, n)) : fallback;
}

// ---------------------------------------------------------------- log

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
  while (el.log.childElementCount > LOG_LIMIT) el.log.lastElementChild.remove();
  el.logEmpty.hidden = true;
  return { li, body, tag };
}

function logSystem(text, tone = "info", extra = {}) {
  const { li, body, tag } = addEntry("system");
  li.dataset.tone = tone;
  tag.textContent = { ok: "info", info: "info", warn: "warn", error: "error" }[tone];
  for (const [k, v] of Object.entries(extra)) li.dataset[k] = String(v);
  body.textContent = text;
}

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
  if (typeof push.ts === "string") li.title = `server time ${push.ts}`;
}

function logChat(msg) {
  const { li, body } = addEntry("chat");
  li.dataset.id = String(msg.id);
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = msg.text;
  const meta = document.createElement("span");
  meta.className = "meta";
  body.append(text, meta);
  msg.li = li;
  msg.meta = meta;
  setChatState(msg, msg.state);
}

function setChatState(msg, state, rttMs) {
  msg.state = state;
  if (!msg.li) return;
  msg.li.dataset.state = state;
  if (state === "pending") msg.meta.textContent = "pending · sends on reconnect";
  else if (state === "sent") msg.meta.textContent = "sent · waiting for echo";
  else if (state === "echoed") {
    msg.li.dataset.rtt = rttMs.toFixed(1);
    msg.meta.textContent = `echoed · RTT ${formatMs(rttMs)}`;
  }
}

function logEcho(text) {
  const { body } = addEntry("echo");
  const span = document.createElement("span");
  span.className = "text";
  span.textContent = text;
  body.append(span);
}

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
  const msg = { id: nextId++, text, state: "pending", transmitted: false };
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

/** Hands one message to the socket; false when there is none open. */
function transmit(msg) {
  msg.sentWall = Date.now();
  msg.sentPerf = performance.now();
  const frame = JSON.stringify({ type: "chat", id: msg.id, text: msg.text, sent: msg.sentWall });
  if (!connection.send(frame)) return false;
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

function onMessage(data) {
  if (typeof data !== "string") {
    counts.echoes += 1;
    logEcho(`binary frame, ${data.byteLength} bytes`);
    renderCounts();
    return;
  }
  let frame = null;
  try {
    frame = JSON.parse(data);
  } catch {
    // not JSON: an echo of something another client sent raw; show it as it came
  }
  if (frame && frame.type === "push" && typeof frame.value === "number") {
    onPush(frame);
  } else if (frame && frame.type === "chat" && inflight.has(frame.id)) {
    const msg = inflight.get(frame.id);
    inflight.delete(frame.id);
    const rtt = performance.now() - msg.sentPerf;
    counts.echoes += 1;
    el.rtt.textContent = formatMs(rtt);
    // An entry already dropped from the log (cap, Clear) is updated off-screen: re-adding it as a new
    // entry would push out more entries whose echoes are still coming, and so on.
    setChatState(msg, "echoed", rtt);
    el.announcer.textContent = `Message ${msg.id} echoed in ${formatMs(rtt)}`;
  } else {
    counts.echoes += 1;
    logEcho(frame && typeof frame.text === "string" ? frame.text : data);
  }
  renderCounts();
}

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
  const stat = el.pending.closest(".stat");
  const active = queue.length > 0 ? "true" : "false";
  if (stat.dataset.active !== active) stat.dataset.active = active;
}

/** Writes only changes: the counters tick four times a second and most of them rarely move. */
function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function closeText(close) {
  const reason = close.reason ? close.reason : describeClose(close.code);
  return `${close.code} ${reason}`;
}

function renderStatus({ state, attempt, lastClose, delayMs }) {
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
  let text = "";
  if (connection.state === "reconnecting") {
    const s = Math.max(0, reconnectUntil - performance.now()) / 1000;
    text = ` in ${s < 1 ? s.toFixed(1) : Math.ceil(s)} s`;
  }
  if (el.countdown.textContent !== text) el.countdown.textContent = text;
}

function tick() {
  renderCounts();
  renderCountdown();
}

// ---------------------------------------------------------------- wiring

connection.addEventListener("state", (e) => renderStatus(e.detail));
connection.addEventListener("open", () => {
  connectedAt = performance.now();
  logSystem(`Connected to ${url}`, "ok");
  flushQueue();
});
connection.addEventListener("close", (e) => {
  const { code, reason, everOpened } = e.detail;
  connectedAt = 0;
  requeueInflight();
  if (!everOpened) return; // failed attempts show in the status line, not as a log line each
  const text = code === 1001
    ? `Server is going away (${closeText({ code, reason })}): it is restarting or shutting down. Reconnecting…`
    : `Connection closed: ${closeText({ code, reason })}. Reconnecting…`;
  logSystem(text, code === 1000 || code === 1001 ? "warn" : "error", { code });
});
connection.addEventListener("message", (e) => onMessage(e.detail.data));

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
  radio.addEventListener("change", () => {
    if (radio.checked) el.log.dataset.filter = radio.value;
  });
}

el.endpoint.textContent = url;
if (endpoint.ignored) {
  logSystem(`Ignored ?ws=${params.get("ws")}: not a path or a URL on this page's origin (${location.origin})`, "warn");
}
setInterval(tick, 250);
renderCounts();
connection.start();
