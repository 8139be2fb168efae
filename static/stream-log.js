// The stream panel's log, newest first and capped at LOG_LIMIT: pushes, your messages with their state
// (pending, sent, echoed with the round-trip time), echoes of anything else, connection notices and
// the marker of an app switch. It only draws: what happened comes from stream.js.

/** @import { App } from "./apps.js" */
/** @import { PushFrame } from "./protocol.js" */
/** @import { Outgoing } from "./stream.js" */
import { LOG_LIMIT, span } from "./dom.js";

/** @typedef {"push" | "chat" | "echo" | "system"} EntryKind */
/** @typedef {"ok" | "info" | "warn" | "error"} Tone */

const timeFormat = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit", minute: "2-digit", second: "2-digit", fractionalSecondDigits: 3, hour12: false,
});

/** @param {number} ms */
export function formatMs(ms) {
  return ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}

export class StreamLog {
  /** @param {{ log: HTMLOListElement, empty: HTMLElement }} el */
  constructor(el) {
    this.el = el;
    /**
     * Each message's entry. An entry already dropped from the log (cap, Clear) is still updated,
     * off-screen: re-adding it would push out more entries whose echoes are still coming, and so on.
     * @type {WeakMap<Outgoing, { li: HTMLLIElement, meta: HTMLElement }>}
     */
    this.views = new WeakMap();
  }

  clear() {
    this.el.log.replaceChildren();
    this.el.empty.hidden = false;
  }

  /**
   * @param {EntryKind} kind
   * @param {Date} time
   */
  #add(kind, time = new Date()) {
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
    this.el.log.prepend(li);
    while (this.el.log.childElementCount > LOG_LIMIT) this.el.log.lastElementChild?.remove();
    this.el.empty.hidden = true;
    return { li, body, tag };
  }

  /**
   * @param {string} text
   * @param {Tone} tone
   * @param {Record<string, string | number>} extra more data- attributes on the entry
   */
  system(text, tone = "info", extra = {}) {
    const { li, body, tag } = this.#add("system");
    li.dataset.tone = tone;
    tag.textContent = { ok: "info", info: "info", warn: "warn", error: "error" }[tone];
    for (const [k, v] of Object.entries(extra)) li.dataset[k] = String(v);
    body.textContent = text;
  }

  /** @param {PushFrame} push */
  push(push) {
    const { li, body } = this.#add("push");
    li.dataset.seq = String(push.seq);
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.setAttribute("aria-hidden", "true");
    bar.style.setProperty("--v", String(push.value));
    body.append(span("seq", `#${push.seq}`), bar, span("value", push.value.toFixed(4)));
    li.title = `server time ${push.ts}`;
  }

  /** @param {Outgoing} msg a message just typed */
  chat(msg) {
    const { li, body } = this.#add("chat");
    li.dataset.id = String(msg.id);
    const meta = span("meta", "");
    body.append(span("text", msg.text), meta);
    this.views.set(msg, { li, meta });
    this.update(msg);
  }

  /**
   * Shows the message's state: pending, sent, or echoed with its RTT (and /echo's count of it).
   * @param {Outgoing} msg
   * @param {number} rttMs for "echoed"
   * @param {number | null} n /echo's count of the message; null from /ws, which counts nothing
   */
  update(msg, rttMs = 0, n = null) {
    const view = this.views.get(msg);
    if (view === undefined) return;
    const { li, meta } = view;
    li.dataset.state = msg.state;
    if (msg.state === "pending") meta.textContent = "pending · sends on reconnect";
    else if (msg.state === "sent") meta.textContent = "sent · waiting for echo";
    else {
      li.dataset.rtt = rttMs.toFixed(1);
      meta.textContent = `echoed · RTT ${formatMs(rttMs)}`;
      if (n !== null) {
        li.dataset.n = String(n);
        meta.textContent = `echo #${n} · RTT ${formatMs(rttMs)}`;
      }
    }
  }

  /**
   * An echo of nothing the page is waiting for: something sent raw, a binary frame.
   * @param {string} text
   * @param {number | null} n /echo's count, when it gave one
   */
  echo(text, n = null) {
    const { li, body } = this.#add("echo");
    if (n !== null) {
      li.dataset.n = String(n);
      body.append(span("seq", `#${n}`));
    }
    body.append(span("text", text));
  }

  /**
   * The line that marks a switch in the log; `meta` is filled in once the old socket has closed.
   * @param {App} from
   * @param {App} to
   */
  switched(from, to) {
    const { li, body, tag } = this.#add("system");
    tag.textContent = "app";
    li.dataset.tone = "info";
    li.dataset.switch = to.id;
    li.classList.add("entry-switch");
    const meta = span("meta", "");
    body.append(span("text", `Switched from ${from.label} to ${to.label}`), meta);
    return { li, meta };
  }
}
