// A connection's status line, for both panels (the stream's in the header, the Room's in its card):
// a coloured dot by state (data-state), what is going on in words (announced to screen readers), and
// while a reconnect waits, the seconds left, counted down outside the announced text so screen readers
// hear state changes, not a ticking clock.

/** @import { StateDetail } from "./connection.js" */
import { closeText, countdownText } from "./connection.js";

/**
 * A panel's words for its states.
 * @typedef {object} StatusWords
 * @property {string} first while the first attempt connects ("Connecting…")
 * @property {() => string} connected ("Connected"; the Room says under which name)
 * @property {string} waiting while a reconnect waits, after why the last one ended ("reconnecting")
 * @property {string} trying while a later attempt connects, before "(attempt N)…" ("connecting")
 * @property {string} unreachable why, when no connection ever opened ("Server unreachable"; "" for none)
 */

/**
 * The status line's words for a connection state.
 * @param {StateDetail} detail
 * @param {StatusWords} words
 */
export function statusText({ state, attempt, lastClose }, words) {
  if (state === "connected") return words.connected();
  // While retrying, the reason the last connection ended stays in view: a person who looks up after
  // a few failed attempts still learns what happened (a 1001 means the server went away on purpose).
  const why = lastClose
    ? `Closed: ${closeText(lastClose)} · `
    : attempt > 0 && words.unreachable !== "" ? `${words.unreachable} · ` : "";
  if (state === "reconnecting") return `${why}${words.waiting}`;
  return attempt > 0 ? `${why}${words.trying} (attempt ${attempt + 1})…` : words.first;
}

export class StatusView {
  /**
   * @param {{ status: HTMLElement, text: HTMLElement, countdown: HTMLElement }} el
   * @param {StatusWords} words
   * @param {() => number} now on performance.now()'s clock, as the Connection's delays
   */
  constructor(el, words, now = () => performance.now()) {
    this.el = el;
    this.words = words;
    this.now = now;
    /** @type {StateDetail} */
    this.last = { state: "idle", attempt: 0, lastClose: null };
    this.reconnectUntil = 0;
  }

  /** @param {StateDetail} detail the Connection's `state` event */
  render(detail) {
    this.last = detail;
    const { status } = this.el;
    status.dataset.state = detail.state;
    status.dataset.attempt = String(detail.attempt);
    if (detail.lastClose) status.dataset.closeCode = String(detail.lastClose.code);
    if (detail.state === "reconnecting") this.reconnectUntil = this.now() + (detail.delayMs ?? 0);
    this.refresh();
  }

  /** Says the current state again: for words that changed meanwhile (the Room's welcome names it). */
  refresh() {
    this.el.text.textContent = statusText(this.last, this.words);
    this.tick();
  }

  /** The countdown, every tick: written only when it changed. */
  tick() {
    const text = countdownText(this.last.state, this.reconnectUntil, this.now());
    if (this.el.countdown.textContent !== text) this.el.countdown.textContent = text;
  }
}
