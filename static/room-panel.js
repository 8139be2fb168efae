// The Room panel: the component's /room app on a socket of its own, beside the stream (which keeps
// its own socket and app switch). Who said what, oldest first; a send box; the room's own connection
// status; after a reconnect the messages missed while away, marked "recovered" (see room.js).
//
//   ?room=NAME   the room to join (default lobby; 1 to 32 letters, digits, - or _)
//   ?name=NAME   the name to say things under (default: the room gives a guest-… name); the name
//                field changes it and keeps the URL in step
//
// Everything a message carries is put on the page as text (textContent), never as HTML: names and
// texts come from other people.

/** @import { CloseDetail, ConnectionOptions } from "./connection.js" */
/** @import { RoomFrame } from "./protocol.js" */
import { Connection, closeText } from "./connection.js";
import { $, LOG_LIMIT, span } from "./dom.js";
import { Outbox, Room, hrefForName, roomFromPage, validName } from "./room.js";
import { StatusView } from "./status-view.js";

/**
 * Starts the panel: joins the room at once and keeps rejoining.
 * @param {ConnectionOptions} backoff the page's reconnect knobs
 */
export function startRoomPanel(backoff) {
  const panel = new RoomPanel(roomFromPage(location.href), backoff);
  panel.connection.start();
  return panel;
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });

export class RoomPanel {
  /**
   * @param {ReturnType<typeof roomFromPage>} start the room and name the page's URL chose
   * @param {ConnectionOptions} backoff
   */
  constructor(start, backoff) {
    this.el = {
      name: $("room-name", HTMLElement),
      status: $("room-status", HTMLElement),
      statusText: $("room-status-text", HTMLElement),
      countdown: $("room-countdown", HTMLElement),
      join: $("room-join", HTMLFormElement),
      you: $("room-you", HTMLInputElement),
      log: $("room-log", HTMLOListElement),
      empty: $("room-empty", HTMLElement),
      form: $("room-form", HTMLFormElement),
      say: $("room-say", HTMLInputElement),
      hint: $("room-hint", HTMLElement),
    };
    const room = new Room({ room: start.room, name: start.name });
    this.room = room;
    this.outbox = new Outbox();
    this.connection = new Connection(room.url(location.href), backoff);
    // The welcome says under which name; until it comes the socket is open but not yet in the room.
    this.status = new StatusView(
      { status: this.el.status, text: this.el.statusText, countdown: this.el.countdown },
      {
        first: "Joining…",
        connected: () => (room.joinedAs === null ? "Joining…" : `In the room as ${room.joinedAs}`),
        waiting: "rejoining",
        trying: "rejoining",
        unreachable: "",
      },
    );
    this.send = (/** @type {string} */ text) => this.connection.send(text);
    this.el.name.textContent = room.room;
    this.el.you.value = room.name;
    this.#listen();
    if (start.ignoredRoom) this.#notice(`Ignored ?room=: a room name is 1 to 32 letters, digits, - or _; joined ${room.room}`, "warn", "ignored");
    if (start.ignoredName) this.#notice("Ignored ?name=: a name is 1 to 32 characters, none of them control characters", "warn", "ignored");
  }

  /** Four times a second while the tab is visible: the countdown. */
  tick() {
    this.status.tick();
  }

  #listen() {
    const { connection, el } = this;
    connection.on("state", (e) => this.status.render(e.detail));
    connection.on("message", (e) => this.#read(e.detail.data));
    connection.on("close", (e) => this.#closed(e.detail));
    el.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.#say();
    });
    el.join.addEventListener("submit", (e) => {
      e.preventDefault();
      this.#rename();
    });
  }

  /** Keeps the newest entry in view, unless the person scrolled up to read. */
  #append(/** @type {HTMLLIElement} */ li) {
    const { log, empty } = this.el;
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    log.append(li);
    while (log.childElementCount > LOG_LIMIT) log.firstElementChild?.remove();
    empty.hidden = true;
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  /**
   * @param {RoomFrame} message
   * @param {boolean} recovered
   */
  #message(message, recovered) {
    const li = document.createElement("li");
    li.className = "room-entry room-message";
    li.dataset.id = message.id;
    li.dataset.recovered = String(recovered);
    if (message.from === this.room.joinedAs) li.classList.add("mine");
    const head = document.createElement("span");
    head.className = "room-meta";
    head.append(span("from", message.from));
    if (message.at !== undefined) {
      const at = new Date(message.at);
      const stamp = document.createElement("time");
      stamp.dateTime = at.toISOString();
      stamp.textContent = timeFormat.format(at);
      head.append(stamp);
    }
    if (recovered) {
      const mark = span("recovered", "recovered");
      mark.title = "Said while you were disconnected; replayed when you came back";
      head.append(mark);
    }
    li.append(head, span("text", message.text));
    this.#append(li);
  }

  /**
   * @param {string} text
   * @param {"info" | "ok" | "warn" | "error"} tone
   * @param {string} what a data-what for tests and styles: joined, closed, gap, error
   */
  #notice(text, tone, what) {
    const li = document.createElement("li");
    li.className = "room-entry room-notice";
    li.dataset.tone = tone;
    li.dataset.what = what;
    li.textContent = text;
    this.#append(li);
  }

  /** The name the room welcomed this socket under, for the status line and the e2e tests. */
  #renderJoined() {
    const { joinedAs } = this.room;
    if (joinedAs === null) delete this.el.status.dataset.joinedAs;
    else this.el.status.dataset.joinedAs = joinedAs;
  }

  #renderHint() {
    const { hint } = this.el;
    const n = this.outbox.waiting.length;
    hint.textContent = n === 0 ? "" : `Offline: ${n} waiting, said as soon as the room is back.`;
    if (n === 0) delete hint.dataset.tone;
    else hint.dataset.tone = "warn";
  }

  /** @param {string | ArrayBuffer} data */
  #read(data) {
    if (typeof data !== "string") return; // the room sends text only
    const reading = this.room.read(data);
    switch (reading.kind) {
      case "welcome": {
        this.#renderJoined();
        this.status.refresh();
        if (this.el.you.value.trim() === "") this.el.you.placeholder = reading.name;
        this.#notice(
          reading.resumedFrom === null
            ? `Joined ${reading.room} as ${reading.name}`
            : `Rejoined ${reading.room} as ${reading.name}; what was said meanwhile follows, marked recovered`,
          "ok",
          "joined",
        );
        this.outbox.flush(this.send);
        this.#renderHint();
        break;
      }
      case "message":
        this.#message(reading.message, reading.recovered);
        break;
      case "duplicate":
        break; // shown already
      case "gap":
        this.#notice(
          "Some messages were lost: the room's history no longer reaches back to where you were. What is said from now on shows up here.",
          "warn",
          "gap",
        );
        break;
      case "error":
        this.#notice(`Not said: ${reading.text}`, "error", "error");
        break;
      case "other":
        this.#notice(`The room sent something this page does not know: ${reading.text.slice(0, 200)}`, "warn", "other");
        break;
    }
  }

  /** @param {CloseDetail} detail */
  #closed({ code, reason, everOpened }) {
    this.room.left();
    this.#renderJoined();
    // The next attempt joins from the newest position seen.
    this.connection.url = this.room.url(location.href);
    if (!everOpened) return;
    this.#notice(`Disconnected (${closeText({ code, reason })}); rejoining…`, "warn", "closed");
  }

  #say() {
    const { el, outbox } = this;
    const text = el.say.value.trim();
    if (text === "") {
      el.hint.textContent = "Type something first.";
      el.say.focus();
      return;
    }
    // The input's maxlength keeps a text within the room's MAX_TEXT (it counts UTF-16 units, which
    // are never fewer than characters). Before the welcome the socket may be open but the room not
    // yet joined: wait for it.
    const joined = this.room.joinedAs !== null;
    const result = outbox.add(text, (t) => joined && this.send(t));
    if (result === "full") {
      el.hint.textContent = `${outbox.waiting.length} messages are already waiting; try again once the room is back.`;
      el.hint.dataset.tone = "warn";
      return;
    }
    el.say.value = "";
    this.#renderHint();
  }

  #rename() {
    const { el, room, connection } = this;
    const name = validName(el.you.value);
    if (name === null) {
      el.hint.textContent = "A name is 1 to 32 characters, none of them control characters.";
      el.you.focus();
      return;
    }
    if (name === room.name && connection.state === "connected") return;
    room.name = name;
    history.replaceState(history.state, "", hrefForName(name, location.href));
    // A new socket under the new name, from where this one was: nothing said meanwhile is missed.
    // Not in the room until its welcome (switchTo tells of no close for the socket it replaces).
    room.left();
    this.#renderJoined();
    connection.switchTo(room.url(location.href));
  }
}
