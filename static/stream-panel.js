// The stream panel: a live view of a WebSocket app, the gateway's built-in stream or the component's
// echo app, switched in the header. The status line, the chart, the counters, the send box and the
// log; what the traffic means is stream.js's (unit-tested), this file puts it on the page.
//
// The log is the page's history and outlives a switch (which it marks); the chart and the counters
// describe the app in use and start over with it.

/** @import { App } from "./apps.js" */
/** @import { CloseDetail, ConnectionOptions, StateDetail } from "./connection.js" */
/** @import { Outgoing } from "./stream.js" */
import { APPS, hrefForApp } from "./apps.js";
import { LiveChart } from "./chart.js";
import { Connection, closeText } from "./connection.js";
import { $ } from "./dom.js";
import { socketUrl } from "./endpoint.js";
import { StatusView } from "./status-view.js";
import { Stream } from "./stream.js";
import { StreamLog, formatMs } from "./stream-log.js";

/** @param {{ ws: HTMLInputElement, echo: HTMLInputElement }} radios */
function elements(radios) {
  return {
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
    appRadios: radios,
  };
}

/**
 * Starts the panel: connects to the app the URL chose and keeps reconnecting.
 * @param {{ app: App, url: string }} start the app and socket the page's URL chose (apps.js)
 * @param {ConnectionOptions} backoff the page's reconnect knobs
 */
export function startStreamPanel(start, backoff) {
  const panel = new StreamPanel(start, backoff);
  panel.connection.start();
  return panel;
}

export class StreamPanel {
  /**
   * @param {{ app: App, url: string }} start
   * @param {ConnectionOptions} backoff
   */
  constructor(start, backoff) {
    this.el = elements({ ws: $("app-ws", HTMLInputElement), echo: $("app-echo", HTMLInputElement) });
    /** The app on screen: the one the socket is open, or being opened, to. */
    this.app = start.app;
    this.connection = new Connection(start.url, backoff);
    this.stream = new Stream();
    this.log = new StreamLog({ log: this.el.log, empty: this.el.logEmpty });
    this.chart = new LiveChart(this.el.chart);
    this.status = new StatusView(
      { status: this.el.status, text: this.el.statusText, countdown: this.el.countdown },
      { first: "Connecting…", connected: () => "Connected", waiting: "reconnecting", trying: "connecting", unreachable: "Server unreachable" },
    );
    this.send = (/** @type {string} */ text) => this.connection.send(text);
    this.#listen();
    this.#renderApp();
    this.#renderCounts();
  }

  /** Four times a second while the tab is visible: the counters (pushes/s moves by itself) and the countdown. */
  tick() {
    this.#renderCounts();
    this.status.tick();
  }

  /** @param {string} text a warning line in the log */
  warn(text) {
    this.log.system(text, "warn");
  }

  #listen() {
    const { connection, el } = this;
    connection.on("state", (e) => this.#renderState(e.detail));
    connection.on("open", () => this.#opened());
    connection.on("close", (e) => this.#closed(e.detail));
    connection.on("message", (e) => this.#read(e.detail.data));
    el.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.#submit();
    });
    el.reconnectNow.addEventListener("click", () => connection.reconnectNow());
    el.clear.addEventListener("click", () => {
      this.log.clear();
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
        if (radio.checked) this.#switchApp(to);
      });
    }
  }

  /**
   * @param {string} text
   * @param {"warn" | undefined} tone
   */
  #hint(text, tone = undefined) {
    this.el.hint.textContent = text;
    if (tone === undefined) delete this.el.hint.dataset.tone;
    else this.el.hint.dataset.tone = tone;
  }

  /** Writes only changes: the counters tick four times a second and most of them rarely move. */
  #renderCounts() {
    const { el, stream } = this;
    setText(el.sent, String(stream.counts.sent));
    setText(el.echoes, String(stream.counts.echoes));
    setText(el.pushes, String(stream.counts.pushes));
    setText(el.rate, stream.rate().toFixed(1));
    setText(el.pending, String(stream.queue.length));
    const active = stream.queue.length > 0 ? "true" : "false";
    if (el.pendingStat.dataset.active !== active) el.pendingStat.dataset.active = active;
  }

  /** @param {Outgoing[]} msgs messages whose state changed */
  #updateAll(msgs) {
    for (const msg of msgs) this.log.update(msg);
  }

  #submit() {
    const { el, stream } = this;
    const text = el.input.value.trim();
    if (text === "") {
      el.hint.textContent = "Type a message first.";
      el.input.focus();
      return;
    }
    const msg = stream.add(text, this.send);
    if (msg === null) {
      this.#hint(`${stream.queue.length} messages are already waiting for the connection; try again once it is back.`, "warn");
      return;
    }
    this.log.chat(msg);
    el.input.value = "";
    if (msg.state === "pending") this.#hint("Offline: queued, it is sent as soon as the connection is back.", "warn");
    else this.#hint("");
    this.#renderCounts();
  }

  /** @param {string | ArrayBuffer} data */
  #read(data) {
    const { el, log } = this;
    const reading = this.stream.read(data);
    if (reading.kind === "push") {
      this.chart.add(reading.push.value, performance.now());
      el.latest.textContent = reading.push.value.toFixed(4);
      log.push(reading.push);
    } else if (reading.kind === "echoed") {
      const { msg, rttMs, n } = reading;
      el.rtt.textContent = formatMs(rttMs);
      log.update(msg, rttMs, n);
      el.announcer.textContent = `Message ${msg.id} echoed${n === null ? "" : ` as echo #${n}`} in ${formatMs(rttMs)}`;
    } else if (reading.kind === "echo") {
      // Not a frame of the page's own: an echo of something sent raw, shown as it came.
      log.echo(reading.text, reading.n);
    } else {
      log.echo(`binary frame, ${reading.bytes} bytes`);
    }
    this.#renderCounts();
  }

  /** @param {StateDetail} detail */
  #renderState(detail) {
    const { state, attempt } = detail;
    this.status.render(detail);
    const offline = state === "reconnecting" || (state === "connecting" && attempt > 0);
    this.el.input.placeholder = offline ? "Offline: messages wait in a queue…" : "Type a message…";
    this.el.reconnectNow.hidden = state !== "reconnecting";
  }

  #opened() {
    this.stream.opened();
    this.log.system(`Connected to ${this.connection.url}`, "ok");
    this.#updateAll(this.stream.flush(this.send));
    if (this.stream.queue.length === 0 && this.el.hint.dataset.tone === "warn") this.#hint("");
    this.#renderCounts();
  }

  /** @param {CloseDetail} detail */
  #closed({ code, reason, everOpened }) {
    this.#updateAll(this.stream.closed());
    this.#renderCounts();
    if (!everOpened) return; // failed attempts show in the status line, not as a log line each
    const text = code === 1001
      ? `Server is going away (${closeText({ code, reason })}): it is restarting or shutting down. Reconnecting…`
      : `Connection closed: ${closeText({ code, reason })}. Reconnecting…`;
    this.log.system(text, code === 1000 || code === 1001 ? "warn" : "error", { code });
  }

  /** Everything on screen that says which app is in use. */
  #renderApp() {
    const { app, el } = this;
    document.body.dataset.app = app.id;
    el.appRadios[app.id].checked = true;
    el.endpoint.textContent = this.connection.url;
    // An app that pushes nothing gets an empty chart that says so, not one that waits forever.
    this.chart.setEmptyText(app.pushes ? "Waiting for pushes…" : `No pushes: ${app.label} only answers what you send`);
    el.chart.setAttribute("aria-label", app.pushes
      ? "Line chart of the values pushed by the server over the last 60 seconds"
      : `Empty chart: ${app.label} pushes nothing, it only answers the messages you send`);
  }

  /**
   * Closes the socket in use (1000) and opens the other app's. The log keeps its history and marks the
   * switch; messages still waiting for an echo go out again on the new socket, counted as its own.
   * @param {App} to
   */
  #switchApp(to) {
    if (to.id === this.app.id) return;
    const from = this.app;
    const fromUrl = this.connection.url;
    this.app = to;
    history.replaceState(history.state, "", hrefForApp(to, location.href));
    this.#updateAll(this.stream.switched());
    this.chart.clear();
    this.el.latest.textContent = "–";
    this.el.rtt.textContent = "–";
    const marker = this.log.switched(from, to);
    const ended = this.connection.switchTo(socketUrl(null, location.href, to.path).url);
    this.#renderApp();
    this.#renderCounts();
    this.el.announcer.textContent = `Switched to ${to.label}`;
    ended.then((close) => {
      marker.meta.textContent = leftText(fromUrl, close);
      if (close !== null) marker.li.dataset.code = String(close.code);
    });
  }
}

/**
 * @param {Node} node
 * @param {string} text
 */
function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
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
